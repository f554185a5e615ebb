package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/apitest"
)

// TestHTTPACL checks every API route: refused without credentials (401)
// and for an account without the permission (403), not refused for an
// admin; the health endpoints stay open.
func TestHTTPACL(t *testing.T) {
	path := apitest.ACLFile(t)
	b, _ := startBroker(t, func(c *broker.Config) { c.ACLFile = path })
	base, hc := "http://"+b.HTTPAddr(), httpClient(t)
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	call := func(method, path, auth string) int {
		req, err := http.NewRequest(method, base+path, strings.NewReader(`{"topic":"X"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, r := range routes {
		if r.need == nil {
			t.Errorf("%s %s has no permission row", r.method, r.path)
		}
		p := strings.NewReplacer("{topic}", "X", "{group}", "Y", "{queue}", "0", "{msgId}", "00").Replace(r.path)
		if got := call(r.method, p, ""); got != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d", r.method, p, got)
		}
		if got := call(r.method, p, basic("user-key", "wrong-secret")); got != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong secret: %d", r.method, p, got)
		}
		if got := call(r.method, p, basic("user-key", "user-secret")); got != http.StatusForbidden {
			t.Errorf("%s %s without permission: %d", r.method, p, got)
		}
		if got := call(r.method, p, basic("admin-key", "admin-secret")); got == http.StatusUnauthorized || got == http.StatusForbidden {
			t.Errorf("%s %s as admin: %d", r.method, p, got)
		}
	}
	// The user's own topic and group are allowed.
	if got := call("POST", "/v1/topics/T/messages", basic("user-key", "user-secret")); got == http.StatusForbidden || got == http.StatusUnauthorized {
		t.Errorf("produce to T: %d", got)
	}
	if got := call("GET", "/v1/groups/G/offsets", basic("user-key", "user-secret")); got == http.StatusForbidden || got == http.StatusUnauthorized {
		t.Errorf("offsets of G: %d", got)
	}
	for _, p := range []string{"/livez", "/readyz", "/metrics"} {
		if got := call("GET", p, ""); got != http.StatusOK {
			t.Errorf("%s: %d, want open", p, got)
		}
	}
	if got := call("GET", "/debug/pprof/", basic("admin-key", "admin-secret")); got == http.StatusOK {
		t.Errorf("pprof served while off")
	}
}

func TestHTTPMetricsAuthAndPprof(t *testing.T) {
	path := apitest.ACLFile(t)
	b, _ := startBroker(t, func(c *broker.Config) { c.ACLFile, c.MetricsAuth, c.Pprof = path, true, true })
	base, hc := "http://"+b.HTTPAddr(), httpClient(t)
	get := func(path, user, pass string) int {
		req, _ := http.NewRequest("GET", base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/metrics", "", ""); got != http.StatusUnauthorized {
		t.Errorf("/metrics without credentials: %d", got)
	}
	if got := get("/metrics", "user-key", "user-secret"); got != http.StatusOK {
		t.Errorf("/metrics with an account: %d", got)
	}
	if got := get("/debug/pprof/", "user-key", "user-secret"); got != http.StatusForbidden {
		t.Errorf("pprof for a non-admin: %d", got)
	}
	if got := get("/debug/pprof/", "admin-key", "admin-secret"); got != http.StatusOK {
		t.Errorf("pprof for an admin: %d", got)
	}
}

func TestPprofOffWithoutACL(t *testing.T) {
	b, _ := startBroker(t, nil)
	base, hc := "http://"+b.HTTPAddr(), httpClient(t)
	resp, err := hc.Get(base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("pprof served by default")
	}
}
