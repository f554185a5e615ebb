package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleSignIn puts the console behind an HTTP Basic gate (a proxy
// in front of the broker, with a read-only account), as a broker with
// authentication answers: 401 without credentials, 403 for what the
// account may not do. The console asks for the account, sends it on every
// call, and hides an action once it was refused.
func TestConsoleSignIn(t *testing.T) {
	br := newBrowser(t)
	br.expected = map[int]bool{401: true, 403: true}
	s := startServer(t)
	s.call(t, "POST", "/v1/topics", map[string]any{"name": "orders"}, 201, nil)
	target, _ := url.Parse(s.base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var authorized atomic.Int64
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) < 4 || r.URL.Path[:4] != "/v1/" {
			proxy.ServeHTTP(w, r) // the console's own files are public
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok || user != "viewer" || pass != "view" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"type":"urn:ferry:problem:unauthorized","title":"unauthorized","status":401,"detail":"sign in","code":1010}`))
			return
		}
		authorized.Add(1)
		if r.Method != http.MethodGet {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"type":"urn:ferry:problem:no-permission","title":"no permission","status":403,"detail":"viewer may only read","code":16}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)

	br.run(t, "the sign-in form", chromedp.Navigate(gate.URL+"/console/topics"), chromedp.WaitVisible("#login", chromedp.ByQuery))
	br.run(t, "sign in",
		chromedp.SetValue(`#login input[name="user"]`, "viewer", chromedp.ByQuery),
		chromedp.SetValue(`#login input[name="pass"]`, "view", chromedp.ByQuery),
		chromedp.Click(`#login button`, chromedp.ByQuery),
		chromedp.WaitVisible(`a[href="/console/topics/orders"]`, chromedp.ByQuery))
	if authorized.Load() == 0 {
		t.Fatal("no request carried the account")
	}
	if who := br.text(t, "#session strong"); who != "viewer" {
		t.Fatalf("signed in as %q", who)
	}
	// Creating a topic is refused: the form goes away.
	br.run(t, "a refused create",
		chromedp.Click("details summary", chromedp.ByQuery),
		chromedp.SetValue(`#create-topic input[name="topic"]`, "nope", chromedp.ByQuery),
		chromedp.Click(`#create-topic button.primary`, chromedp.ByQuery))
	waitFor(t, 10*time.Second, "the create form hidden", func() bool {
		var gone bool
		br.run(t, "look for the form", chromedp.Evaluate(`document.querySelector("#create-topic") === null`, &gone))
		return gone
	})
	// It stays hidden on the topic's page too; reading still works.
	br.run(t, "topic page", chromedp.Navigate(gate.URL+"/console/topics/orders"), chromedp.WaitVisible("#send-message", chromedp.ByQuery))
	var edit bool
	br.run(t, "look for the settings", chromedp.Evaluate(`document.querySelector("#edit-topic") !== null`, &edit))
	if edit {
		t.Fatal("topic settings shown after topic.write was refused")
	}
	br.noErrors(t, "signed in")
}
