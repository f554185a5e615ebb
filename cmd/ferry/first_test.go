package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's first example works at once against a fresh server: the
// first send creates the topic, and the consumer started right after
// finds its route. A consume without --group creates no group, and
// without --from-beginning it prints only new messages — over the name
// server and over HTTP. A send of an overlong line says what it sent.
func TestFirstExample(t *testing.T) {
	p, err := spawnServer(filepath.Join(t.TempDir(), "data"))
	defer p.stop()
	if err != nil {
		t.Fatal(err)
	}
	ns := []string{"--namesrv", p.namesrv}
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errs, code := ferry(t, stdin, append(args, ns...)...)
		if code != 0 {
			t.Fatalf("ferry %v: exit %d\n%s%s", args, code, out, errs)
		}
		return out, errs
	}
	run("a\nb\n", "msg", "send", "--topic", "Demo2")
	if out, _ := run("", "msg", "consume", "--topic", "Demo2", "--from-beginning", "--max", "2"); out != "a\nb\n" {
		t.Fatalf("msg consume right after the first send: %q", out)
	}

	for _, via := range []string{p.namesrv, "http://" + p.http} {
		ns = []string{"--namesrv", via}
		if out, errs := run("", "msg", "consume", "--topic", "Demo2"); out != "" || !strings.Contains(errs, "consumed 0 messages") {
			t.Fatalf("via %s: consume without --from-beginning printed old messages: %q %q", via, out, errs)
		}
		// Following: the messages sent after it started, not before.
		got := make(chan string, 1)
		go func() {
			out, _, _ := ferry(t, "", append([]string{"msg", "consume", "--topic", "Demo2", "--follow", "--max", "1"}, ns...)...)
			got <- out
		}()
		deadline := time.Now().Add(20 * time.Second)
		var out string
		for i := 0; out == ""; i++ {
			select {
			case out = <-got:
			case <-time.After(50 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("via %s: a following consume printed none of the new messages", via)
				}
				run("new-"+strconv.Itoa(i)+"\n", "msg", "send", "--topic", "Demo2")
			}
		}
		if !strings.HasPrefix(out, "new-") {
			t.Fatalf("via %s: following consume printed %q, want a new message", via, out)
		}
	}
	if out, _ := run("", "group", "list", "-o", "json"); strings.Contains(out, "group_name") {
		t.Fatalf("consumes without --group left groups behind: %s", out)
	}

	// msg send stops at a line longer than a message may be, says which,
	// and still says how many it sent before it.
	in := "one\ntwo\n" + strings.Repeat("x", opsMaxLine+10) + "\nfour\n"
	out, errs, code := ferry(t, in, "msg", "send", "--topic", "overlong", "--namesrv", p.namesrv)
	if code != 1 || !strings.Contains(errs, "sent 2 messages to overlong") || !strings.Contains(errs, "line 3 of stdin is longer than") {
		t.Fatalf("msg send of an overlong line: exit %d\n%s%s", code, out, errs)
	}
}
