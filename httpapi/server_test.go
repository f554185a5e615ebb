package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/internal/apitest"
)

// fasthttp's own messages reach the broker's log as structured lines
// without the request's contents.
func TestFasthttpLogger(t *testing.T) {
	b, logs := startBroker(t, nil)
	for _, req := range []string{
		"POST /v1/topics/T/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\nsecret-payload",
		"GET /livez HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: bogus\r\n\r\nsecret-payload",
		"\x16\x03\x01secret-payload\r\n\r\n",
	} {
		c := apitest.Dial(t, b.HTTPAddr())
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		apitest.ClosedWithin(c, 5*time.Second)
	}
	waitFor(t, 5*time.Second, "fasthttp's lines", func() bool { return strings.Count(logs.String(), "http: connection error") == 3 })
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if strings.Contains(line, "secret") {
			t.Fatalf("request contents in the log: %s", line)
		}
	}
}

// The HTTP port closes idle keep-alive connections and cuts off a client
// that sends its request too slowly.
func TestHTTPTimeouts(t *testing.T) {
	b, _ := startBroker(t, func(c *broker.Config) {
		c.IdleTimeout, c.ReadTimeout = broker.Duration(200*time.Millisecond), broker.Duration(300*time.Millisecond)
	})
	c := apitest.Dial(t, b.HTTPAddr())
	if _, err := c.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("livez: %v %v", resp, err)
	}
	if d, closed := apitest.ClosedWithin(c, 5*time.Second); !closed || d < 150*time.Millisecond {
		t.Fatalf("idle keep-alive connection: closed %v after %v, want closed after the 200 ms idle timeout", closed, d)
	}

	slow := apitest.Dial(t, b.HTTPAddr())
	cut := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		apitest.ClosedWithin(slow, 10*time.Second)
		cut <- time.Since(start)
	}()
	req := []byte("GET /livez HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\n\r\n")
	tick := time.NewTicker(20 * time.Millisecond) // the client's pace: 50 bytes a second
	defer tick.Stop()
	for i := range req {
		select {
		case d := <-cut:
			if d < 250*time.Millisecond {
				t.Fatalf("cut off after %v, before the read timeout", d)
			}
			return
		case <-tick.C:
		}
		if _, err := slow.Write(req[i : i+1]); err != nil {
			break
		}
	}
	t.Fatalf("a request trickled over %v went through a 300 ms read timeout", time.Since(start))
}

// Connections over max_connections_per_addr are closed at once on the
// HTTP port, after a 503, with a log line naming the limit.
func TestConnectionLimits(t *testing.T) {
	b, logs := startBroker(t, func(c *broker.Config) { c.MaxConnections, c.MaxConnectionsPerAddr = 3, 2 })
	apitest.CheckPerAddrLimit(t, b.HTTPAddr(), "http", logs, func(third net.Conn) {
		_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(third), nil)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("http: a third connection from one address: %v %v, want a 503", resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "too many connections from one address") {
			t.Fatalf("http: 503 body %q", body)
		}
	})
}

// TestHTTPPlainTextOnTLSPort: a plain-text HTTP client on the TLS port
// fails, and the broker's log says why.
func TestHTTPPlainTextOnTLSPort(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := certs.WriteDev(dir, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := certs.Server(certFile, keyFile, "", zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	b, logs := startBroker(t, nil, broker.WithTLS(srvTLS))
	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get("http://" + b.HTTPAddr() + "/livez"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain text served on the TLS port")
		}
	}
	waitFor(t, 5*time.Second, "the log line", func() bool {
		return strings.Contains(logs.String(), "first record does not look like a TLS handshake")
	})
	cliTLS, err := certs.Client(certFile, false, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cliTLS}}
	defer tc.CloseIdleConnections()
	resp, err := tc.Get("https://" + b.HTTPAddr() + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https /livez: %d", resp.StatusCode)
	}
}

// A broker serves HTTP only when built with the mount, and not with
// http_port -1.
func TestHTTPOnlyWithMount(t *testing.T) {
	if b, _ := startBroker(t, func(c *broker.Config) { c.HTTPPort = -1 }); b.HTTPAddr() != "" {
		t.Fatalf("http_port -1: HTTP served on %s", b.HTTPAddr())
	}
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", 0
	cfg.SegmentSize = 16 << 20
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	if b.HTTPAddr() != "" {
		t.Fatalf("without the mount: HTTP served on %s", b.HTTPAddr())
	}
}

// A port that cannot be bound fails the broker's start, naming HTTP.
func TestListenFailure(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", taken.Addr().(*net.TCPAddr).Port
	cfg.SegmentSize = 16 << 20
	b, err := broker.New(cfg, broker.WithHTTP(Mount()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	if err := b.Start(); err == nil || !strings.HasPrefix(err.Error(), "broker: http listen: ") {
		t.Fatalf("start on a taken HTTP port: %v, want a broker: http listen: error", err)
	}
}
