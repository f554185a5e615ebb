package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// aclFile is a RocketMQ plain_acl.yml with an admin account and an
// application account that may only read the topic "orders".
const aclFile = `accounts:
  - accessKey: console-admin
    secretKey: admin-secret-1
    admin: true
  - accessKey: orders-app
    secretKey: orders-secret-1
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - orders=SUB
`

// TestConsoleWithACL signs the console in to a broker that runs with an
// ACL file: the API refuses it until it signs in, a wrong secret is
// refused without the browser's own password box (the console's calls say
// X-Requested-With, so the broker sends no Basic challenge), and the admin
// account can read and change what the console shows.
func TestConsoleWithACL(t *testing.T) {
	br := newBrowser(t)
	br.expected = map[int]bool{401: true, 403: true}
	dir := t.TempDir()
	acl := filepath.Join(dir, "plain_acl.yml")
	if err := os.WriteFile(acl, []byte(aclFile), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--acl-file", acl)

	// Without an account the API answers 401 with a Basic challenge for
	// scripts, and without one for the console.
	for _, console := range []bool{false, true} {
		req, _ := http.NewRequest("GET", s.base+"/v1/topics", nil)
		if console {
			req.Header.Set("X-Requested-With", "ferry-console")
		}
		resp, err := s.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		challenge := resp.Header.Get("WWW-Authenticate") != ""
		if resp.StatusCode != http.StatusUnauthorized || challenge == console {
			t.Fatalf("console=%v: status %d, challenge %v", console, resp.StatusCode, challenge)
		}
	}

	signIn := func(user, pass string) {
		t.Helper()
		br.run(t, "the sign-in form", chromedp.Navigate(s.base+"/console/topics"), chromedp.WaitVisible("#login", chromedp.ByQuery))
		br.run(t, "sign in as "+user,
			chromedp.SetValue(`#login input[name="user"]`, user, chromedp.ByQuery),
			chromedp.SetValue(`#login input[name="pass"]`, pass, chromedp.ByQuery),
			chromedp.Click(`#login button`, chromedp.ByQuery))
	}
	// A wrong secret: the console asks again.
	signIn("console-admin", "not-the-secret")
	waitFor(t, 10*time.Second, "the sign-in form again", func() bool {
		var shown bool
		br.run(t, "look for the form", chromedp.Evaluate(`document.querySelector("#login") !== null`, &shown))
		return shown
	})
	// The admin account: create a topic; the console opens its page.
	br.run(t, "clear the session", chromedp.Evaluate(`sessionStorage.clear()`, nil))
	signIn("console-admin", "admin-secret-1")
	br.run(t, "create a topic",
		chromedp.WaitVisible("details summary", chromedp.ByQuery),
		chromedp.Click("details summary", chromedp.ByQuery),
		chromedp.SetValue(`#create-topic input[name="topic"]`, "orders", chromedp.ByQuery),
		chromedp.Click(`#create-topic button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible("#send-message", chromedp.ByQuery))
	if who := br.text(t, "#session strong"); who != "console-admin" {
		t.Fatalf("signed in as %q", who)
	}
	br.noErrors(t, "signed in with an ACL")
}
