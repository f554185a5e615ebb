package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The README's first example works at once against a fresh server: the
// first send creates the topic, and the consumer started right after
// finds its route.
func TestFirstExample(t *testing.T) {
	p, err := spawnServer(filepath.Join(t.TempDir(), "data"))
	defer p.stop()
	if err != nil {
		t.Fatal(err)
	}
	ns := []string{"--namesrv", p.namesrv}
	out, errs, code := ferry(t, "a\nb\n", append([]string{"msg", "send", "--topic", "Demo2"}, ns...)...)
	if code != 0 {
		t.Fatalf("msg send: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = ferry(t, "", append([]string{"msg", "consume", "--topic", "Demo2", "--from-beginning", "--max", "2"}, ns...)...)
	if code != 0 || !strings.Contains(out, "a") || !strings.Contains(out, "b") {
		t.Fatalf("msg consume right after the first send: exit %d\n%s%s", code, out, errs)
	}
}
