package client

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goList runs the go command's list in this package's directory.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(bin); err != nil {
		bin = "go"
	}
	out, err := exec.Command(bin, append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// The SDK links the standard library and Ferry's wire packages, nothing
// else: a user who sends a message does not link the storage engine, the
// broker's logger or the storage packages.
func TestSDKImportGraphStaysSmall(t *testing.T) {
	allowed := map[string]bool{
		"github.com/ferrymq/ferry/client":                  true,
		"github.com/ferrymq/ferry/protocol":                true,
		"github.com/ferrymq/ferry/client/internal/httpapi": true,
		"github.com/ferrymq/ferry/remoting":                true,
	}
	for _, pkg := range []string{".", "./admin"} {
		for _, p := range goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg) {
			if !allowed[p] && p != "github.com/ferrymq/ferry/client/admin" {
				t.Errorf("%s imports %s; the SDK may import only the standard library, protocol and remoting", pkg, p)
			}
		}
	}
	// The HTTP transport links net/http, which is most of the graph; the
	// rest must stay a handful of packages.
	all, http := len(goList(t, "-deps", ".")), len(goList(t, "-deps", "net/http"))
	if all > http+20 {
		t.Errorf("go list -deps ./client: %d packages, net/http alone %d: the SDK's graph grew by more than 20 past it", all, http)
	}
}
