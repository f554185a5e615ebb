package load

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// TestRunWithCredentials: against a broker with an ACL file, a run with
// credentials sends without errors and one without is refused.
func TestRunWithCredentials(t *testing.T) {
	dir := t.TempDir()
	aclPath := filepath.Join(dir, "plain_acl.yml")
	if err := os.WriteFile(aclPath, []byte("accounts:\n - {accessKey: bench-admin, secretKey: bench-secret, admin: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns, _ := startCluster(t, filepath.Join(dir, "data"), aclPath)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := Config{Namesrv: ns.Addr(), Topic: "BenchACL", Queues: 2, Producers: 2, Batch: 4, Size: 64,
		Duration: 200 * time.Millisecond, Credentials: remoting.Credentials{AccessKey: "bench-admin", SecretKey: "bench-secret"}}
	res, err := Run(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Errors != 0 {
		t.Fatalf("signed run: sent %d, errors %d (%s)", res.Sent, res.Errors, res.FirstError)
	}
	// Unsigned: the route lookup is open, every send is refused.
	run.Credentials = remoting.Credentials{}
	res, err = Run(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "not signed") {
		t.Fatalf("unsigned run: sent %d, errors %d (%s)", res.Sent, res.Errors, res.FirstError)
	}
}
