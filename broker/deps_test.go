package broker

import (
	"strings"
	"testing"

	"github.com/ferrymq/ferry/internal/apitest"
)

// The broker links no HTTP server: package httpapi mounts on it
// (WithHTTP) and fasthttp is httpapi's.
func TestBrokerLinksNoHTTPServer(t *testing.T) {
	for _, p := range apitest.Deps(t, ".") {
		if p == "github.com/ferrymq/ferry/httpapi" || p == "github.com/ferrymq/ferry/internal/httpjson" ||
			strings.HasPrefix(p, "github.com/valyala/fasthttp") {
			t.Errorf("package broker imports %s", p)
		}
	}
}
