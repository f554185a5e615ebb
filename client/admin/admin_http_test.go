package admin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/client"
)

// TestAdminHTTPProblems checks how the HTTP transport maps the API's
// problem documents to the package's errors and names the subject.
func TestAdminHTTPProblems(t *testing.T) {
	for _, c := range []struct {
		name, path, problem string
		status              int
		is                  error
		msg                 string
	}{
		{"topic", "/v1/topics/orders", `{"title":"topic does not exist","status":404,"detail":"broker: topic does not exist: orders","code":17}`,
			404, client.ErrTopicNotFound, "client: no such topic: orders (HTTP 404 from GET /v1/topics/orders)"},
		{"group quoted", "/v1/groups/g1", `{"title":"consumer group does not exist","status":404,"detail":"broker: consumer group does not exist: \"g1\"","code":26}`,
			404, client.ErrGroupNotFound, "client: no such group: g1 (HTTP 404 from GET /v1/groups/g1)"},
		{"topic exists", "/v1/topics", `{"title":"topic already exists","status":409,"detail":"broker: topic already exists: orders","code":18}`,
			409, client.ErrTopicExists, "client: topic already exists: orders (HTTP 409 from GET /v1/topics)"},
		{"group exists", "/v1/groups", `{"title":"consumer group already exists","status":409,"detail":"broker: consumer group already exists: g1","code":1007}`,
			409, client.ErrGroupExists, "client: group already exists: g1 (HTTP 409 from GET /v1/groups)"},
		{"message", "/v1/messages/X", `{"title":"message not found","status":404,"detail":"broker: message not found: X","code":22}`,
			404, client.ErrMessageNotFound, "client: no such message: X (HTTP 404 from GET /v1/messages/X)"},
		{"route not found", "/v1/nothing", `{"title":"no such resource","status":404,"detail":"broker: no such resource: /v1/nothing","code":1000}`,
			404, nil, "GET /v1/nothing: HTTP 404: no such resource: /v1/nothing"},
		{"not json", "/v1/broker", "upstream down", 502, nil, "GET /v1/broker: HTTP 502: upstream down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.problem))
			}))
			defer srv.Close()
			a, err := New(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			err = a.h.do(ctxT(t), "GET", c.path, nil, nil, nil)
			var p *client.ServerError
			if !errors.As(err, &p) || p.Status != c.status {
				t.Fatalf("%v: not a client.ServerError with status %d", err, c.status)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v: not %v", err, c.is)
			}
			if err.Error() != c.msg {
				t.Errorf("got %q, want %q", err.Error(), c.msg)
			}
		})
	}
}

// TestAdminHTTPNotSupported checks the operation the HTTP API cannot
// serve (routes come from name servers), and that it fails before any
// request. (Consuming with a commit works over HTTP: cmd/ferry's ops tests
// run it against a live broker.)
func TestAdminHTTPNotSupported(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	a, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Route(ctxT(t), "orders")
	if !errors.Is(err, client.ErrNotSupported) || !strings.Contains(err.Error(), "name-server endpoint") {
		t.Errorf("Route: %v", err)
	}
}
