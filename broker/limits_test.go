package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/internal/apitest"
)

// loggedBroker starts a broker whose log goes to the returned buffer.
func loggedBroker(t *testing.T, mut func(*Config)) (*Broker, *apitest.LogSink) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPPort = -1
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	mut(&cfg)
	var logs apitest.LogSink
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

// Connections over max_connections_per_addr are closed at once on the
// remoting port, with a log line naming the limit (the HTTP port's:
// package httpapi).
func TestConnectionLimits(t *testing.T) {
	b, logs := loggedBroker(t, func(c *Config) { c.MaxConnections, c.MaxConnectionsPerAddr = 3, 2 })
	apitest.CheckPerAddrLimit(t, b.Addr(), "remoting", logs, nil)
}

// The remoting port closes idle connections after idle_timeout.
func TestRemotingIdleTimeout(t *testing.T) {
	b, _ := loggedBroker(t, func(c *Config) { c.IdleTimeout = Duration(200 * time.Millisecond) })
	if d, closed := apitest.ClosedWithin(apitest.Dial(t, b.Addr()), 5*time.Second); !closed || d < 150*time.Millisecond {
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
