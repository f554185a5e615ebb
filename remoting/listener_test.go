package remoting

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"log/slog"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// acceptAll serves gl by keeping every connection it hands out open
// until the peer closes it or the test ends.
func acceptAll(t *testing.T, gl *GuardedListener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var held []net.Conn
	wg.Go(func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			})
		}
	})
	t.Cleanup(func() {
		_ = gl.Close()
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refusedByServer reports whether the server closed c (EOF) rather than
// keeping it open for a while.
func refusedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func TestGuardedListenerLimitsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	gl := GuardListener(ln, ListenerLimits{MaxConns: 3, MaxConnsPerAddr: 2, Port: "test",
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), LogEvery: time.Hour})
	acceptAll(t, gl)
	addr := ln.Addr().String()

	a1 := dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.1", addr)
	waitFor(t, "two connections", func() bool { return gl.Conns() == 2 })
	if !refusedByServer(dialFrom(t, "127.0.0.1", addr)) {
		t.Fatal("a third connection from one address was kept (limit 2 per address)")
	}
	dialFrom(t, "127.0.0.2", addr)
	waitFor(t, "three connections", func() bool { return gl.Conns() == 3 })
	if !refusedByServer(dialFrom(t, "127.0.0.3", addr)) {
		t.Fatal("a fourth connection was kept (limit 3)")
	}
	// A closed connection gives its place back.
	_ = a1.Close()
	waitFor(t, "a place given back", func() bool {
		c := dialFrom(t, "127.0.0.1", addr)
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return isTimeout(err) // kept open, not closed
	})
	if n := gl.Conns(); n != 3 {
		t.Fatalf("%d connections counted, want 3", n)
	}

	out := logs.String()
	if strings.Count(out, "connection refused") != 1 ||
		!strings.Contains(out, "too many connections from one address") || !strings.Contains(out, `"limit":2`) {
		t.Fatalf("want one refusal line (rate-limited) naming the limit, got:\n%s", out)
	}
}

// failingListener fails Accept with err n times, then accepts from the
// real listener.
type failingListener struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (f *failingListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.n > 0 {
		f.n--
		f.mu.Unlock()
		return nil, f.err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func TestGuardedListenerRetriesTransientErrors(t *testing.T) {
	for _, err := range []error{
		&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)},
		&net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ENFILE)},
	} {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		var logs syncBuffer
		gl := GuardListener(&failingListener{Listener: ln, n: 6, err: err}, ListenerLimits{Port: "test",
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)), LogEvery: time.Hour})
		c := dialFrom(t, "127.0.0.1", ln.Addr().String())
		start := time.Now()
		sc, aerr := gl.Accept()
		if aerr != nil {
			t.Fatalf("%v: Accept gave up: %v", err, aerr)
		}
		// 5+10+20+40+80+160 ms of back-off.
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Fatalf("%v: accepted after %v: no back-off", err, d)
		}
		if out := logs.String(); strings.Count(out, "accept failed") != 1 || !strings.Contains(out, "too many open files") &&
			!strings.Contains(out, "file table overflow") && !strings.Contains(out, "too many open files in system") {
			t.Fatalf("%v: want one rate-limited line with the error, got:\n%s", err, out)
		}
		_ = sc.Close()
		_ = c.Close()
		_ = gl.Close()
	}
}

func TestGuardedListenerCloseEndsBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	gl := GuardListener(&failingListener{Listener: ln, n: 1 << 30, err: emfile}, ListenerLimits{})
	done := make(chan error, 1)
	go func() {
		_, err := gl.Accept()
		done <- err
	}()
	_ = gl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still backing off after Close")
	}
	// A permanent error is returned, not retried.
	gl2 := GuardListener(&failingListener{Listener: ln, n: 1, err: errors.New("boom")}, ListenerLimits{})
	if _, err := gl2.Accept(); err == nil || err.Error() != "boom" {
		t.Fatalf("permanent error: %v", err)
	}
}

// exhaustFDs lowers the process's open-file limit to a little above what
// is open now and opens files until none is left. release closes them
// and restores the limit.
func exhaustFDs(t *testing.T) (free func(n int), release func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	lim := old
	lim.Cur = uint64(len(ents) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var files []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("filling the descriptor table: %v", err)
			}
			break
		}
		files = append(files, f)
	}
	free = func(n int) {
		for ; n > 0 && len(files) > 0; n-- {
			_ = files[len(files)-1].Close()
			files = files[:len(files)-1]
		}
	}
	return free, func() {
		free(len(files))
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
}

// Out of file descriptors, the server cannot accept a connection that
// has arrived; once descriptors are free it serves it.
func TestServerSurvivesFileDescriptorExhaustion(t *testing.T) {
	var logs syncBuffer
	_, addr := startServer(t, HandlerFunc(echo), ServerConfig{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	free, release := exhaustFDs(t)
	defer release()
	free(1) // room for the client's socket, none for the server's accept
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		release()
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, "the accept error", func() bool { return strings.Contains(logs.String(), "accept failed") })
	release()
	req := NewRequest(protocol.ReqHeartBeat, nil, []byte("ping"))
	req.Opaque = 7
	frame, _ := AppendFrame(nil, req)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	p, err := ReadFrame(nc, 0)
	if err != nil {
		t.Fatalf("no answer once descriptors were free: %v\nlog:\n%s", err, logs.String())
	}
	if resp, err := DecodePayload(p); err != nil || resp.Opaque != 7 || string(resp.Body) != "ping" {
		t.Fatalf("answer %+v %v", resp, err)
	}
}

func TestServerClosesIdleConnections(t *testing.T) {
	release := make(chan struct{})
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		go func() { // parked, as a held pull is
			<-release
			_ = c.Reply(NewResponse(req, protocol.RespSuccess, ""))
		}()
	})
	srv, addr := startServer(t, mux, ServerConfig{IdleTimeout: 100 * time.Millisecond})

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	if !refusedByServer(idle) {
		t.Fatal("an idle connection was not closed")
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}

	// A connection waiting for an answer is not idle.
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	req := NewRequest(protocol.ReqPullMessage, nil, nil)
	req.Opaque = 1
	frame, _ := AppendFrame(nil, req)
	if _, err := held.Write(frame); err != nil {
		t.Fatal(err)
	}
	_ = held.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // five idle timeouts
	if _, err := held.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("a connection with a held request was closed: %v", err)
	}
	close(release)
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ReadFrame(held, 0); err != nil {
		t.Fatalf("held answer: %v", err)
	}
	if !refusedByServer(held) {
		t.Fatal("idle after its answer, the connection was not closed")
	}
	waitFor(t, "connections gone", func() bool { return srv.ConnCount() == 0 })
}

// A client trickling a frame a byte at a time is cut off by the read
// timeout although it is never idle.
func TestServerCutsOffSlowClient(t *testing.T) {
	var logs syncBuffer
	_, addr := startServer(t, HandlerFunc(echo), ServerConfig{IdleTimeout: time.Minute,
		ReadTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := NewRequest(protocol.ReqHeartBeat, nil, bytes.Repeat([]byte("x"), 200))
	frame, _ := AppendFrame(nil, req)
	cut := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		_, _ = nc.Read(make([]byte, 1)) // returns when the server closes
		cut <- time.Since(start)
	}()
	tick := time.NewTicker(20 * time.Millisecond) // the client's pace: 50 bytes a second
	defer tick.Stop()
	for i := range frame {
		select {
		case d := <-cut:
			if d < 300*time.Millisecond {
				t.Fatalf("cut off after %v, before the read timeout", d)
			}
			if !strings.Contains(logs.String(), "client too slow") {
				t.Fatalf("no log line for the slow client:\n%s", logs.String())
			}
			return
		case <-tick.C:
		}
		if _, err := nc.Write(frame[i : i+1]); err != nil {
			break
		}
	}
	t.Fatal(fmt.Sprintf("the whole frame (%d bytes, %v) went through a 300 ms read timeout", len(frame), time.Since(start)))
}
