package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// logSink keeps a broker's log lines (zerolog writes one per Write).
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "")
}

// loggedBroker starts a broker whose log goes to the returned buffer.
func loggedBroker(t *testing.T, mut func(*Config)) (*Broker, *logSink) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPPort = -1
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	mut(&cfg)
	var logs logSink
	b, err := New(cfg, WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b, &logs
}

// closedWithin reports whether the server closes c within d, and when.
func closedWithin(c net.Conn, d time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	for {
		_, err := c.Read(make([]byte, 4096))
		if err != nil {
			return time.Since(start), errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		}
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Connections over max_connections_per_addr or max_connections are closed
// at once on the remoting port, with a log line naming the limit (the
// HTTP port's: package httpapi).
func TestConnectionLimits(t *testing.T) {
	b, logs := loggedBroker(t, func(c *Config) { c.MaxConnections, c.MaxConnectionsPerAddr = 3, 2 })
	for _, port := range []struct{ name, addr string }{{"remoting", b.Addr()}} {
		dial(t, port.addr)
		dial(t, port.addr)
		third := dial(t, port.addr)
		if _, closed := closedWithin(third, 5*time.Second); !closed {
			t.Fatalf("%s: a third connection from one address was kept (limit 2)", port.name)
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		other, err := d.Dial("tcp", port.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, closed := closedWithin(other, 200*time.Millisecond); closed {
			t.Fatalf("%s: a connection from another address was refused", port.name)
		}
		if !strings.Contains(logs.String(), `"port":"`+port.name+`"`) ||
			!strings.Contains(logs.String(), "connection refused: too many connections from one address") {
			t.Fatalf("%s: no refusal line:\n%s", port.name, logs.String())
		}
	}
}

// The remoting port closes idle connections after idle_timeout.
func TestRemotingIdleTimeout(t *testing.T) {
	b, _ := loggedBroker(t, func(c *Config) { c.IdleTimeout = Duration(200 * time.Millisecond) })
	if d, closed := closedWithin(dial(t, b.Addr()), 5*time.Second); !closed || d < 150*time.Millisecond {
		t.Fatalf("idle remoting connection: closed %v after %v, want closed after the 200 ms idle timeout", closed, d)
	}
}

func TestConnConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.IdleTimeout = 0 }, "idle_timeout must be a positive duration"},
		{func(c *Config) { c.ReadTimeout = -1 }, "read_timeout must be a positive duration"},
		{func(c *Config) { c.MaxConnections = 0 }, "max_connections 0 must be at least 1"},
		{func(c *Config) { c.MaxConnectionsPerAddr = 20000 }, "max_connections_per_addr 20000 must be 1 to max_connections (10000)"},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// Durations in the startup log carry their unit in the field name.
func TestLogDurationsHaveUnits(t *testing.T) {
	_, logs := loggedBroker(t, func(c *Config) {})
	out := logs.String()
	for _, want := range []string{`"startup_ms":`, `"took_ms":`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in the startup log", want)
		}
	}
	for _, unitless := range []string{`"took":`, `"startup":`} {
		if strings.Contains(out, unitless) {
			t.Errorf("%s without a unit in the startup log:\n%s", unitless, out)
		}
	}
}
