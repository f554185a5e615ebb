package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/ferrymq/ferry/client"
)

// shotDir is where the tests save the console's screenshots: the
// README's copies in docs/console with FERRY_SCREENSHOTS=1, otherwise a
// directory of the test run's own, so a test run leaves the tree as it was.
func shotDir(t *testing.T) string {
	if os.Getenv("FERRY_SCREENSHOTS") == "1" {
		return filepath.Join("..", "docs", "console")
	}
	return t.TempDir()
}

// findBrowser returns the Chromium to drive, or skips the test.
func findBrowser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FERRY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed: the console's browser tests need one (Debian: apt-get install -y chromium; scripts/test.sh installs it when run as root)")
	return ""
}

// browser is a headless Chromium tab that records every JavaScript error,
// console error and failed request.
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	errors   []string
	expected map[int]bool // HTTP statuses a test provokes on purpose
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := findBrowser(t)
	b := &browser{}
	// A fresh profile, removed once the browser is gone (t.TempDir's
	// check can race the browser's last writes).
	profile, err := os.MkdirTemp("", "ferry-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(profile), chromedp.WindowSize(1366, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp logs CDP events it does not model (e.g. the top layer a
	// <dialog> uses); those are not the console's errors.
	quiet := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "unhandled") {
			b.fail("chromedp: " + msg)
		}
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(quiet))
	t.Cleanup(func() { cancel(); cancelAlloc(); _ = os.RemoveAll(profile) })
	b.ctx = ctx
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.fail("exception: " + e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.fail("console error: " + strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			// Network entries repeat what the response events report.
			if e.Entry.Level == cdplog.LevelError && e.Entry.Source != cdplog.SourceNetwork {
				b.fail("browser log: " + e.Entry.Text + " " + e.Entry.URL)
			}
		case *network.EventLoadingFailed:
			if !e.Canceled {
				b.fail("request failed: " + e.ErrorText)
			}
		case *network.EventResponseReceived:
			b.mu.Lock()
			ok := b.expected[int(e.Response.Status)]
			b.mu.Unlock()
			if e.Response.Status >= 400 && !ok {
				b.fail(fmt.Sprintf("HTTP %d for %s", e.Response.Status, e.Response.URL))
			}
		}
	})
	if err := chromedp.Run(ctx, network.Enable(), cdplog.Enable(), chromedp.EmulateViewport(1366, 860)); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return b
}

func (b *browser) fail(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// run runs actions with a deadline, failing the test with what.
func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text returns the text of the first element matching sel.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	var s string
	b.run(t, "read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// shot saves a full-page screenshot as name.png in shotDir.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	var buf []byte
	b.run(t, "screenshot "+name, chromedp.Evaluate(`window.scrollTo(0, 0); document.getElementById("toasts").replaceChildren()`, nil), chromedp.FullScreenshot(&buf, 100))
	dir := shotDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// noErrors fails the test with every error the pages produced.
func (b *browser) noErrors(t *testing.T, where string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Fatalf("%s: the console produced errors:\n%s", where, strings.Join(b.errors, "\n"))
	}
}

// seed gives the broker what every page shows: topics with messages, a
// group with lag, a connected consumer, dead letters and delayed messages.
func seed(t *testing.T, s *server) {
	t.Helper()
	for _, tc := range []struct {
		name string
		q    int
	}{{"orders", 4}, {"payments", 2}, {"events", 2}} {
		s.call(t, "POST", "/v1/topics", map[string]any{"name": tc.name, "read_queues": tc.q, "write_queues": tc.q}, 201, nil)
	}
	var msgs []map[string]any
	for i := range 40 {
		msgs = append(msgs, map[string]any{"body": fmt.Sprintf(`{"order":%d,"amount":%d.50,"currency":"EUR"}`, i, 10+i),
			"tags": "created", "keys": []string{fmt.Sprintf("order-%d", i)}, "queue_id": i % 4})
	}
	s.call(t, "POST", "/v1/topics/orders/messages", map[string]any{"messages": msgs}, 200, nil)
	// billing has committed nothing past the start: it lags by 40.
	s.call(t, "POST", "/v1/groups", map[string]any{"name": "billing"}, 201, nil)
	var offs []map[string]any
	for q := range 4 {
		offs = append(offs, map[string]any{"topic": "orders", "queue_id": q, "offset": 0})
	}
	s.call(t, "PUT", "/v1/groups/billing/offsets", map[string]any{"offsets": offs}, 200, nil)

	// failing gives up at once: what it nacks goes to its DLQ.
	s.call(t, "POST", "/v1/groups", map[string]any{"name": "failing", "retry_max_times": 0}, 201, nil)
	s.call(t, "POST", "/v1/topics/payments/messages", map[string]any{"messages": []map[string]any{
		{"body": "charge 1", "keys": []string{"pay-1"}}, {"body": "charge 2", "keys": []string{"pay-2"}}, {"body": "charge 3", "keys": []string{"pay-3"}}}}, 200, nil)
	nacked := 0
	waitFor(t, 20*time.Second, "three payments received and nacked", func() bool {
		var got struct {
			Messages []struct {
				ReceiptHandle string `json:"receipt_handle"`
			} `json:"messages"`
		}
		s.call(t, "POST", "/v1/groups/failing/receive", map[string]any{"topic": "payments", "max": 3, "wait_ms": 500}, 200, &got)
		var hs []string
		for _, m := range got.Messages {
			hs = append(hs, m.ReceiptHandle)
		}
		if len(hs) > 0 {
			s.call(t, "POST", "/v1/groups/failing/nack", map[string]any{"receipt_handles": hs}, 200, nil)
			nacked += len(hs)
		}
		return nacked >= 3
	})
	waitFor(t, 20*time.Second, "three dead letters", func() bool { return groupStat(t, s, "failing").DLQ == 3 })

	// Delayed: two on the 2-hour level, two for a time an hour away.
	at := time.Now().Add(time.Hour).UnixMilli()
	s.call(t, "POST", "/v1/topics/events/messages", map[string]any{"messages": []map[string]any{
		{"body": "reminder 1", "delay_level": 18}, {"body": "reminder 2", "delay_level": 18},
		{"body": "at 1", "deliver_at_ms": at}, {"body": "at 2", "deliver_at_ms": at + 60_000},
		{"body": "now 1"}, {"body": "now 2"}}}, 200, nil)

	// audit is a connected consumer of events (the Go SDK, remoting). The
	// broker registers new topics with the name server shortly after they
	// are created: start once events is routable.
	var c *client.PushConsumer
	waitFor(t, 40*time.Second, "a consumer of events started", func() bool {
		var err error
		c, err = client.NewPushConsumer(s.namesrv, func(context.Context, []*client.MessageExt) error { return nil },
			client.WithGroup("audit"), client.WithConsumeFromWhere(client.ConsumeFromFirstOffset))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Subscribe("events", "*"); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(context.Background()); err != nil {
			_ = c.Close()
			return false
		}
		return true
	})
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, 30*time.Second, "audit online", func() bool { return groupStat(t, s, "audit").Online > 0 })
}

type groupStats struct {
	Name   string `json:"name"`
	Lag    int64  `json:"lag"`
	DLQ    int64  `json:"dlq_messages"`
	Online int    `json:"online_clients"`
}

func groupStat(t *testing.T, s *server, name string) groupStats {
	t.Helper()
	var all []groupStats
	s.call(t, "GET", "/v1/stats/groups", nil, 200, &all)
	for _, g := range all {
		if g.Name == name {
			return g
		}
	}
	return groupStats{}
}

// TestConsole opens every page of the console against a seeded broker,
// checks none produces an error, saves screenshots, and goes through the
// operator's tasks: create a topic, send a message, find it by key, view
// it, reset a group's offsets after the dry run, resend a dead letter.
func TestConsole(t *testing.T) {
	br := newBrowser(t) // skips without Chromium, before starting anything
	s := startServer(t)
	seed(t, s)
	c := "/console/"

	// Overview, reached through the / redirect.
	br.run(t, "overview", chromedp.Navigate(s.base+"/"), chromedp.WaitVisible("#alerts .alert", chromedp.ByQuery),
		chromedp.WaitVisible("main table tbody tr", chromedp.ByQuery))
	var loc string
	br.run(t, "location", chromedp.Location(&loc))
	if loc != s.base+c {
		t.Fatalf("/ went to %s", loc)
	}

	// Topics: the list, then create one and send a message to it.
	br.run(t, "topics", chromedp.Navigate(s.base+c+"topics"), chromedp.WaitVisible(`a[href="/console/topics/orders"]`, chromedp.ByQuery))
	br.shot(t, "topics")
	br.run(t, "create a topic",
		chromedp.Click("#create-topic", chromedp.ByQuery, chromedp.NodeReady), // inside a closed <details>: open it
		chromedp.Click("details summary", chromedp.ByQuery),
		chromedp.SetValue(`#create-topic input[name="topic"]`, "console-demo", chromedp.ByQuery),
		chromedp.SetValue(`#create-topic input[name="read"]`, "2", chromedp.ByQuery),
		chromedp.SetValue(`#create-topic input[name="write"]`, "2", chromedp.ByQuery),
		chromedp.Click(`#create-topic button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible("#send-message", chromedp.ByQuery))
	var topic struct {
		ReadQueues int `json:"read_queues"`
	}
	s.call(t, "GET", "/v1/topics/console-demo", nil, 200, &topic)
	if topic.ReadQueues != 2 {
		t.Fatalf("created topic %+v", topic)
	}
	br.run(t, "send a message",
		chromedp.SetValue(`#send-message textarea[name="body"]`, `{"hello":"console","n":1}`, chromedp.ByQuery),
		chromedp.SetValue(`#send-message input[name="keys"]`, "demo-key-1", chromedp.ByQuery),
		chromedp.SetValue(`#send-message input[name="tags"]`, "demo", chromedp.ByQuery),
		chromedp.Click(`#send-message button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible("#sent", chromedp.ByQuery))
	sent := br.text(t, "#sent a")
	br.shot(t, "topic")

	// Messages: find it by key (the key index is built in the background:
	// search again until it shows), view it.
	waitFor(t, 20*time.Second, "the message found by key", func() bool {
		br.run(t, "find by key", chromedp.Navigate(s.base+c+"messages"),
			chromedp.Click(`button[data-mode="key"]`, chromedp.ByQuery),
			chromedp.SetValue(`#find-key input[name="topic"]`, "console-demo", chromedp.ByQuery),
			chromedp.SetValue(`#find-key input[name="key"]`, "demo-key-1", chromedp.ByQuery),
			chromedp.Click(`#find-key button.primary`, chromedp.ByQuery),
			chromedp.WaitVisible("#results", chromedp.ByQuery))
		var n int
		br.run(t, "count results", chromedp.Evaluate(`document.querySelectorAll("#results tbody tr").length`, &n))
		return n == 1
	})
	br.run(t, "view the message", chromedp.Click("#results tbody tr a", chromedp.ByQuery),
		chromedp.WaitVisible("#message", chromedp.ByQuery), chromedp.WaitVisible("#life", chromedp.ByQuery))
	if id := br.text(t, "#message h2 code"); id != sent {
		t.Fatalf("viewing %q, sent %q", id, sent)
	}
	if body := br.text(t, "#body"); !strings.Contains(body, `"hello": "console"`) {
		t.Fatalf("pretty JSON body: %q", body)
	}
	br.run(t, "hex view", chromedp.Click(`button[data-view="hex"]`, chromedp.ByQuery))
	if hex := br.text(t, "#body"); !strings.Contains(hex, "7b 22 68 65 6c 6c 6f 22") {
		t.Fatalf("hex body: %q", hex)
	}
	br.run(t, "json view", chromedp.Click(`button[data-view="json"]`, chromedp.ByQuery))
	br.shot(t, "message")

	// Messages by time: the last hour of orders, from the topic's page.
	br.run(t, "orders of the last hour", chromedp.Navigate(s.base+c+"topics/orders"),
		chromedp.Click(`#main a[href^="/console/messages?topic=orders&begin="]`, chromedp.ByQuery),
		chromedp.WaitVisible("#results", chromedp.ByQuery))
	var rows int
	br.run(t, "count results", chromedp.Evaluate(`document.querySelectorAll("#results tbody tr").length`, &rows))
	if rows != 40 {
		t.Fatalf("%d orders of the last hour, want 40", rows)
	}

	// Groups: the list, then reset billing to the latest offsets after a
	// dry run.
	br.run(t, "groups", chromedp.Navigate(s.base+c+"groups"), chromedp.WaitVisible(`a[href="/console/groups/billing"]`, chromedp.ByQuery))
	br.run(t, "dry run", chromedp.Navigate(s.base+c+"groups/billing"), chromedp.WaitVisible("#reset-form", chromedp.ByQuery),
		chromedp.WaitVisible("#group-lag", chromedp.ByQuery),
		chromedp.SetValue(`#reset-form select[name="to"]`, "latest", chromedp.ByQuery),
		chromedp.Click("#reset-preview-btn", chromedp.ByQuery),
		chromedp.WaitVisible("#reset-preview table", chromedp.ByQuery))
	if g := groupStat(t, s, "billing"); g.Lag != 40 {
		t.Fatalf("the dry run changed the lag: %+v", g)
	}
	br.shot(t, "group")
	br.run(t, "apply the reset", chromedp.Click("#reset-apply", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-ok", chromedp.ByQuery), chromedp.Click("#confirm-ok", chromedp.ByQuery),
		chromedp.WaitVisible("#reset-done", chromedp.ByQuery))
	if g := groupStat(t, s, "billing"); g.Lag != 0 {
		t.Fatalf("after the reset: %+v", g)
	}

	// Dead letters: pick the group, look at the first one's life, come
	// back and resend it; the page then shows it resent.
	br.run(t, "dead letters", chromedp.Navigate(s.base+c+"dlq"), chromedp.WaitVisible(`#dlq-group`, chromedp.ByQuery),
		chromedp.Click(`#main a[href="/console/dlq/failing"]`, chromedp.ByQuery), chromedp.WaitVisible("button.resend-one", chromedp.ByQuery))
	br.shot(t, "dlq")
	br.run(t, "a dead letter's life", chromedp.Click(`#main td a[href^="/console/messages?id="]`, chromedp.ByQuery),
		chromedp.WaitVisible("#life .alert.bad", chromedp.ByQuery))
	if life := br.text(t, "#life"); !strings.Contains(life, "Moved to the dead-letter queue of failing") || !strings.Contains(life, "Stored in payments") {
		t.Fatalf("life of a dead letter: %q", life)
	}
	br.run(t, "back to the dead letters", chromedp.NavigateBack(), chromedp.WaitVisible("button.resend-one", chromedp.ByQuery))
	br.run(t, "resend one", chromedp.Click("button.resend-one", chromedp.ByQuery))
	waitFor(t, 30*time.Second, "the dead letter shown resent", func() bool {
		var n int
		br.run(t, "count resent", chromedp.Evaluate(`document.querySelectorAll("#main td .badge.ok").length`, &n))
		return n == 1
	})
	var dl struct {
		DeadLetters []struct {
			ResentTo string `json:"resent_to"`
		} `json:"dead_letters"`
	}
	s.call(t, "GET", "/v1/groups/failing/dlq", nil, 200, &dl)
	if len(dl.DeadLetters) != 3 || dl.DeadLetters[0].ResentTo != "topic" {
		t.Fatalf("dead letters after resend: %+v", dl)
	}

	// Resend all, with progress.
	br.run(t, "resend all", chromedp.Click("#resend-all", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-ok", chromedp.ByQuery), chromedp.Click("#confirm-ok", chromedp.ByQuery),
		chromedp.WaitVisible("#resend-progress progress", chromedp.ByQuery))
	waitFor(t, 20*time.Second, "resend all done", func() bool {
		return strings.HasSuffix(br.text(t, "#resend-progress"), "2 resent, 1 resent before (skipped).")
	})

	// Update a topic, then delete it (typing its name to confirm).
	br.run(t, "update a topic", chromedp.Navigate(s.base+c+"topics/console-demo"), chromedp.WaitVisible("#edit-topic", chromedp.ByQuery),
		chromedp.SetValue(`#edit-topic input[name="write"]`, "1", chromedp.ByQuery),
		chromedp.Click(`#edit-topic button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible("#confirm-ok", chromedp.ByQuery), chromedp.Click("#confirm-ok", chromedp.ByQuery))
	waitFor(t, 10*time.Second, "the topic updated", func() bool {
		var tc struct {
			WriteQueues int `json:"write_queues"`
		}
		s.call(t, "GET", "/v1/topics/console-demo", nil, 200, &tc)
		return tc.WriteQueues == 1
	})
	br.run(t, "delete a topic", chromedp.WaitVisible("#delete-topic", chromedp.ByQuery), chromedp.Click("#delete-topic", chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm input`, chromedp.ByQuery),
		chromedp.SendKeys(`#confirm input`, "console-demo", chromedp.ByQuery),
		chromedp.Click("#confirm-ok", chromedp.ByQuery),
		chromedp.WaitVisible("#topic-search", chromedp.ByQuery))
	s.call(t, "GET", "/v1/topics/console-demo", nil, 404, nil)

	// Delayed messages.
	br.run(t, "delayed", chromedp.Navigate(s.base+c+"delayed"), chromedp.WaitVisible("#delayed-levels", chromedp.ByQuery))
	waitFor(t, 20*time.Second, "the delayed counts", func() bool {
		return br.text(t, "#delayed-levels") == "2" && br.text(t, "#delayed-timer") == "2"
	})
	br.shot(t, "delayed")

	// The overview's charts, once two samples (10 s apart) hold traffic:
	// events are sent meanwhile, and audit consumes them.
	stop := make(chan struct{})
	traffic := make(chan struct{})
	go func() {
		defer close(traffic)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s.post("/v1/topics/events/messages", `{"messages":[{"body":"tick tick tick tick"},{"body":"tock tock tock tock"}]}`)
			}
		}
	}()
	waitFor(t, 40*time.Second, "two points of the rate history with traffic", func() bool {
		var st struct {
			Points []struct {
				In  float64 `json:"msg_in_per_s"`
				Out float64 `json:"msg_out_per_s"`
			} `json:"points"`
		}
		s.call(t, "GET", "/v1/broker/stats", nil, 200, &st)
		n := 0
		for _, p := range st.Points {
			if p.In > 0 && p.Out > 0 {
				n++
			}
		}
		return n >= 2
	})
	close(stop)
	<-traffic
	br.run(t, "overview with charts", chromedp.Navigate(s.base+c), chromedp.WaitVisible("main svg.chart path", chromedp.ByQuery))
	br.shot(t, "overview")
	br.run(t, "groups with trends", chromedp.Navigate(s.base+c+"groups"), chromedp.WaitVisible("main svg.spark path", chromedp.ByQuery))
	br.shot(t, "groups")

	// A deep link opened directly, and the dark theme.
	br.run(t, "deep link", chromedp.Navigate(s.base+c+"groups/audit"), chromedp.WaitVisible("#group-lag", chromedp.ByQuery))
	br.run(t, "dark mode",
		emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
		chromedp.Navigate(s.base+c), chromedp.WaitVisible("main table tbody tr", chromedp.ByQuery))
	var bg string
	br.run(t, "dark background", chromedp.Evaluate(`getComputedStyle(document.body).backgroundColor`, &bg))
	if bg != "rgb(13, 17, 23)" {
		t.Fatalf("dark mode background %q", bg)
	}
	br.shot(t, "overview-dark")
	br.noErrors(t, "after every page")
}
