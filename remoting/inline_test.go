package remoting

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// A frame enqueued with no write in progress is written by the caller,
// even with no writer goroutine running; what the socket does not take
// at once is left to the writer, which writes it in order once it runs.
func TestInlineWriteAndHandOff(t *testing.T) {
	srv, peer := tcpPair(t)
	ep := newEndpoint(nil, nil, 0, 0, 0)
	ep.inlineWrites = true
	c := newConn(srv, ep)
	if c.raw == nil {
		t.Fatal("no raw socket for a TCP connection")
	}
	// No writeLoop yet: only an inline write can deliver this.
	small := NewResponse(&Command{Code: 1, Opaque: 7}, protocol.RespSuccess, "")
	small.Body = []byte("hello")
	if err := c.enqueue(small); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(peer)
	p, err := ReadFrame(br, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePayload(p)
	if err != nil || got.Opaque != 7 || string(got.Body) != "hello" {
		t.Fatalf("got %+v, %v", got, err)
	}

	// Frames far larger than the socket buffers, the peer not reading:
	// enqueue must not wait for the peer.
	const n, size = 6, 4 << 20
	for i := range n {
		r := NewResponse(&Command{Code: 1, Opaque: int32(100 + i)}, protocol.RespSuccess, "")
		r.Body = bytes.Repeat([]byte{byte('a' + i)}, size)
		done := make(chan error, 1)
		go func() { done <- c.enqueue(r) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("enqueue %d waited for the peer", i)
		}
	}
	c.mu.Lock()
	handoff := c.writing && c.handoff
	c.mu.Unlock()
	if !handoff {
		t.Fatal("the rest was not handed to the writer")
	}
	go c.writeLoop()
	for i := range n {
		p, err := ReadFrame(br, 0)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := DecodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Opaque != int32(100+i) || len(got.Body) != size || bytes.Count(got.Body, []byte{byte('a' + i)}) != size {
			t.Fatalf("frame %d: opaque %d, %d body bytes", i, got.Opaque, len(got.Body))
		}
	}
	// Once the writer is done, the next frame is written inline again.
	waitFor(t, "the writer to finish", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing
	})
	c.closeWith(ErrConnClosed)
	<-c.writerDone
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("after close: %v", err)
	}
}

// Requests the handler marks Inlinable are served on the connection's
// read goroutine; others on a handler goroutine.
func TestInlinableServedOnReadGoroutine(t *testing.T) {
	onRead := make(chan bool, 2)
	h := func(c *Conn, req *Command) {
		buf := make([]byte, 64<<10)
		onRead <- strings.Contains(string(buf[:runtime.Stack(buf, false)]), "(*Conn).readLoop")
		echo(c, req)
	}
	m := NewMux()
	m.HandleFunc(1, h)
	m.HandleFunc(2, h)
	m.SetInlinable(1, nil)
	_, addr := startServer(t, m, ServerConfig{})
	cl := newClient(t, ClientConfig{})
	for _, tc := range []struct {
		code int16
		want bool
	}{{1, true}, {2, false}} {
		if _, err := cl.InvokeTimeout(context.Background(), addr, NewRequest(tc.code, nil, nil), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := <-onRead; got != tc.want {
			t.Fatalf("code %d served on the read goroutine: %v, want %v", tc.code, got, tc.want)
		}
	}
	m.HandleFunc(1, h) // registering again undoes SetInlinable
	if _, err := cl.InvokeTimeout(context.Background(), addr, NewRequest(1, nil, nil), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if <-onRead {
		t.Fatal("served on the read goroutine after Handle")
	}
}
