package zslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestNewWritesThroughZerolog(t *testing.T) {
	var buf bytes.Buffer
	l := New(zerolog.New(&buf).Level(zerolog.InfoLevel)).With("conn_id", uint64(7), "remote", "1.2.3.4:5")
	l.Debug("dropped", "x", 1)
	l.WithGroup("g").Warn("bad frame", "error", errors.New("boom"), "backoff", 5*time.Millisecond, "n", 3, "ok", true)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("one JSON line expected, got %q: %v", buf.String(), err)
	}
	want := map[string]any{"level": "warn", "message": "bad frame", "conn_id": 7.0, "remote": "1.2.3.4:5",
		"g.error": "boom", "g.backoff": 5.0, "g.n": 3.0, "g.ok": true}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, m[k], v, buf.String())
		}
	}
}

func TestZeroLoggerDisabled(t *testing.T) {
	l := New(zerolog.Logger{})
	l.Error("nothing to write to") // must not panic
	if New(zerolog.Nop()).Enabled(t.Context(), 8) {
		t.Error("a Nop logger reports enabled")
	}
}
