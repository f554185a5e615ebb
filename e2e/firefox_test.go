package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// findFirefox returns the Firefox to drive, or skips the test.
func findFirefox(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_FIREFOX"); p != "" {
		return p
	}
	for _, name := range []string{"firefox-esr", "firefox"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Firefox installed: the Firefox smoke test needs one (Debian: apt-get install -y firefox-esr; scripts/test.sh installs it when run as root)")
	return ""
}

// firefoxPrefs keep a test profile's Firefox off the network: no updates,
// telemetry, safe browsing, remote settings or captive-portal checks, and
// every request that is not for 127.0.0.1 or localhost goes to a proxy
// that does not exist.
var firefoxPrefs = map[string]any{
	"app.update.disabledForTesting":                               true,
	"app.update.auto":                                             false,
	"browser.shell.checkDefaultBrowser":                           false,
	"browser.startup.page":                                        0,
	"browser.startup.homepage":                                    "about:blank",
	"browser.newtabpage.enabled":                                  false,
	"browser.aboutwelcome.enabled":                                false,
	"browser.safebrowsing.malware.enabled":                        false,
	"browser.safebrowsing.phishing.enabled":                       false,
	"browser.safebrowsing.downloads.enabled":                      false,
	"browser.safebrowsing.blockedURIs.enabled":                    false,
	"browser.region.update.enabled":                               false,
	"browser.region.network.url":                                  "",
	"browser.topsites.contile.enabled":                            false,
	"datareporting.healthreport.uploadEnabled":                    false,
	"datareporting.policy.dataSubmissionEnabled":                  false,
	"toolkit.telemetry.enabled":                                   false,
	"toolkit.telemetry.server":                                    "",
	"extensions.update.enabled":                                   false,
	"extensions.getAddons.cache.enabled":                          false,
	"extensions.blocklist.enabled":                                false,
	"media.gmp-manager.url":                                       "",
	"network.captive-portal-service.enabled":                      false,
	"network.connectivity-service.enabled":                        false,
	"network.dns.disablePrefetch":                                 true,
	"network.prefetch-next":                                       false,
	"network.http.speculative-parallel-limit":                     0,
	"services.settings.server":                                    "http://127.0.0.1:9/",
	"network.proxy.type":                                          1,
	"network.proxy.http":                                          "127.0.0.1",
	"network.proxy.http_port":                                     9,
	"network.proxy.ssl":                                           "127.0.0.1",
	"network.proxy.ssl_port":                                      9,
	"network.proxy.no_proxies_on":                                 "127.0.0.1, localhost",
	"network.proxy.allow_hijacking_localhost":                     false,
	"security.OCSP.enabled":                                       0,
	"remote.prefs.recommended":                                    true,
	"browser.newtabpage.activity-stream.feeds.topsites":           false,
	"browser.newtabpage.activity-stream.feeds.section.topstories": false,
}

// firefox is a headless Firefox driven over WebDriver BiDi, recording
// every JavaScript error, console error and HTTP error status.
type firefox struct {
	bidi    *bidiConn
	context string // the browsing context (tab)
	mu      sync.Mutex
	errors  []string
}

var bidiURL = regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)

func newFirefox(t *testing.T) *firefox {
	t.Helper()
	exe := findFirefox(t)
	profile, err := os.MkdirTemp("", "ferry-e2e-firefox-")
	if err != nil {
		t.Fatal(err)
	}
	var prefs strings.Builder
	for k, v := range firefoxPrefs {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&prefs, "user_pref(%q, %s);\n", k, b)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(prefs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--headless", "--no-remote", "--profile", profile, "--remote-debugging-port", "0", "about:blank")
	cmd.Env = append(os.Environ(), "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Firefox's content processes go with it
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Firefox (%s): %v", exe, err)
	}
	exited := make(chan struct{})
	urls := make(chan string, 1)
	var logMu sync.Mutex
	var log []string
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log = append(log, sc.Text())
			logMu.Unlock()
			if m := bidiURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		_ = cmd.Wait()
	}()
	f := &firefox{}
	t.Cleanup(func() {
		if f.bidi != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = f.bidi.call(ctx, "browser.close", nil, nil)
			cancel()
			_ = f.bidi.close()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what is left of its group
		_ = os.RemoveAll(profile)
	})
	var url string
	select {
	case url = <-urls:
	case <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("Firefox exited before it listened:\n%s", strings.Join(log, "\n"))
	case <-time.After(60 * time.Second):
		t.Fatal("Firefox did not open its BiDi port within 60 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.bidi, err = dialBiDi(ctx, url+"/session", f.event)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.bidi.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.bidi.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded", "network.responseCompleted"}}, nil); err != nil {
		t.Fatal(err)
	}
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	if err := f.bidi.call(ctx, "browsingContext.getTree", map[string]any{}, &tree); err != nil || len(tree.Contexts) == 0 {
		t.Fatalf("browsing contexts %+v: %v", tree, err)
	}
	f.context = tree.Contexts[0].Context
	if err := f.bidi.call(ctx, "browsingContext.setViewport", map[string]any{"context": f.context,
		"viewport": map[string]int{"width": 1366, "height": 860}}, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// event records the errors among BiDi events.
func (f *firefox) event(method string, params json.RawMessage) {
	switch method {
	case "log.entryAdded":
		var e struct {
			Type       string `json:"type"`
			Level      string `json:"level"`
			Text       string `json:"text"`
			StackTrace *struct {
				CallFrames []struct {
					URL  string `json:"url"`
					Line int    `json:"lineNumber"`
				} `json:"callFrames"`
			} `json:"stackTrace"`
		}
		if json.Unmarshal(params, &e) == nil && e.Level == "error" {
			where := ""
			if e.StackTrace != nil && len(e.StackTrace.CallFrames) > 0 {
				where = fmt.Sprintf(" at %s:%d", e.StackTrace.CallFrames[0].URL, e.StackTrace.CallFrames[0].Line)
			}
			f.fail(fmt.Sprintf("%s error: %s%s", e.Type, e.Text, where))
		}
	case "network.responseCompleted":
		var e struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
			Response struct {
				Status int `json:"status"`
			} `json:"response"`
		}
		if json.Unmarshal(params, &e) == nil && e.Response.Status >= 400 {
			f.fail(fmt.Sprintf("HTTP %d for %s", e.Response.Status, e.Request.URL))
		}
	}
}

func (f *firefox) fail(s string) {
	f.mu.Lock()
	f.errors = append(f.errors, s)
	f.mu.Unlock()
}

// open loads url and waits until an element matches sel.
func (f *firefox) open(t *testing.T, url, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.bidi.call(ctx, "browsingContext.navigate", map[string]any{"context": f.context, "url": url, "wait": "complete"}, nil); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	waitFor(t, 30*time.Second, sel+" on "+url, func() bool { return f.eval(t, fmt.Sprintf("document.querySelector(%q) !== null", sel)) == true })
}

// eval evaluates a JavaScript expression and returns its value (booleans,
// numbers, strings; nil for others).
func (f *firefox) eval(t *testing.T, expr string) any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value any    `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := f.bidi.call(ctx, "script.evaluate", map[string]any{"expression": expr, "target": map[string]string{"context": f.context},
		"awaitPromise": true}, &res); err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	if res.Type == "exception" {
		t.Fatalf("evaluate %s: %s", expr, res.ExceptionDetails.Text)
	}
	return res.Result.Value
}

// shot saves a screenshot of the whole page as name.png in shotDir.
func (f *firefox) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f.eval(t, `window.scrollTo(0, 0); document.getElementById("toasts").replaceChildren(); true`)
	var res struct {
		Data string `json:"data"`
	}
	if err := f.bidi.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": f.context, "origin": "document"}, &res); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s: not a PNG (%v)", name, err)
	}
	dir := shotDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *firefox) noErrors(t *testing.T, where string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errors) > 0 {
		t.Fatalf("%s: the console produced errors in Firefox:\n%s", where, strings.Join(f.errors, "\n"))
	}
}

// TestFirefoxSmoke loads every page of the console in headless Firefox
// (WebDriver BiDi) against a seeded broker, fails on any JavaScript or
// console error or HTTP error status, and saves a screenshot of the
// Overview.
func TestFirefoxSmoke(t *testing.T) {
	ff := newFirefox(t) // skips without Firefox, before starting anything
	s := startServer(t)
	seed(t, s)
	var msg struct {
		Messages []struct {
			MsgID string `json:"msg_id"`
		} `json:"messages"`
	}
	s.call(t, "GET", "/v1/topics/orders/messages?key=order-7", nil, 200, &msg)
	if len(msg.Messages) != 1 {
		t.Fatalf("order-7: %+v", msg)
	}
	c := s.base + "/console/"
	for _, p := range []struct{ path, sel string }{
		{"", "#brokers tbody tr"},
		{"topics", `a[href="/console/topics/orders"]`},
		{"topics/orders", "#send-message"},
		{"groups", `a[href="/console/groups/billing"]`},
		{"groups/billing", "#group-lag"},
		{"messages", `button[data-mode="key"]`},
		{"messages?id=" + msg.Messages[0].MsgID, "#life"},
		{"dlq", "#dlq-group"},
		{"dlq/failing", "button.resend-one"},
		{"delayed", "#delayed-levels"},
	} {
		ff.open(t, c+p.path, p.sel)
		ff.noErrors(t, "/console/"+p.path)
	}
	ff.open(t, c, "#brokers tbody tr")
	if got := ff.eval(t, `document.querySelector("#brokers tbody tr strong").textContent`); got != "broker-a" {
		t.Fatalf("the Overview's broker %v", got)
	}
	ff.shot(t, "firefox-overview")
	ff.noErrors(t, "after every page")

	// The recorder sees what it is there for: a console error, an uncaught
	// exception and an HTTP error status.
	ff.eval(t, `console.error("probe: console"); setTimeout(() => { throw new Error("probe: uncaught"); }); fetch("/v1/topics/no-such-topic").then(() => true)`)
	waitFor(t, 20*time.Second, "the probes recorded", func() bool {
		ff.mu.Lock()
		defer ff.mu.Unlock()
		all := strings.Join(ff.errors, "\n")
		return strings.Contains(all, "console error: probe: console") && strings.Contains(all, "javascript error: Error: probe: uncaught") &&
			strings.Contains(all, "HTTP 404 for "+s.base+"/v1/topics/no-such-topic")
	})
}
