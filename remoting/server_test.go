package remoting

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer serves h on a loopback port and shuts down at cleanup.
func startServer(t *testing.T, h Handler, cfg ServerConfig) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(h, cfg)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("serve returned %v", err)
		}
	})
	return srv, ln.Addr().String()
}

func newClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	cl := NewClient(cfg)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := poll.Until(context.Background(), 5*time.Second, time.Millisecond, cond); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func echo(c *Conn, req *Command) {
	resp := NewResponse(req, protocol.RespSuccess, "")
	resp.ExtFields = req.ExtFields
	resp.Body = req.Body
	_ = c.Reply(resp)
}

func TestSlowRequestDoesNotBlockOthersOnSameConn(t *testing.T) {
	release := make(chan struct{})
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		<-release
		_ = c.Reply(NewResponse(req, protocol.RespPullNotFound, "held"))
	})
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	srv, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})

	pullDone := make(chan *Command, 1)
	go func() {
		resp, err := cl.Invoke(ctxT(t, 10*time.Second), addr, NewRequest(protocol.ReqPullMessage, nil, nil))
		if err != nil {
			t.Error(err)
		}
		pullDone <- resp
	}()
	for i := 0; i < 20; i++ {
		resp, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, map[string]string{"i": fmt.Sprint(i)}, []byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ExtFields["i"] != fmt.Sprint(i) || string(resp.Body) != "x" {
			t.Fatalf("wrong answer %+v", resp)
		}
	}
	select {
	case <-pullDone:
		t.Fatal("held pull answered early")
	default:
	}
	if n := srv.ConnCount(); n != 1 {
		t.Fatalf("%d connections, want 1", n)
	}
	close(release)
	if resp := <-pullDone; resp == nil || resp.Code != protocol.RespPullNotFound || resp.Remark != "held" {
		t.Fatalf("pull answer %+v", resp)
	}
}

func TestParkedRepliesOutOfOrder(t *testing.T) {
	type parked struct {
		c   *Conn
		req *Command
	}
	var mu sync.Mutex
	var held []parked
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		mu.Lock()
		held = append(held, parked{c, req}) // return without replying: parked
		mu.Unlock()
	})
	_, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})

	const n = 8
	results := make(chan string, n)
	for i := 0; i < n; i++ {
		go func() {
			resp, err := cl.Invoke(ctxT(t, 5*time.Second), addr, NewRequest(protocol.ReqPullMessage, map[string]string{"q": fmt.Sprint(i)}, nil))
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			if resp.ExtFields["q"] != fmt.Sprint(i) {
				results <- fmt.Sprintf("request %d got answer for %s", i, resp.ExtFields["q"])
				return
			}
			results <- ""
		}()
	}
	waitFor(t, "all pulls parked", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == n })
	mu.Lock()
	for i := len(held) - 1; i >= 0; i-- { // answer in reverse order, from this goroutine
		resp := NewResponse(held[i].req, protocol.RespSuccess, "")
		resp.Set("q", held[i].req.StringOr("q", ""))
		if err := held[i].c.Reply(resp); err != nil {
			t.Fatal(err)
		}
	}
	mu.Unlock()
	for i := 0; i < n; i++ {
		if r := <-results; r != "" {
			t.Fatal(r)
		}
	}
}

func TestUnknownCodeNotSupported(t *testing.T) {
	_, addr := startServer(t, NewMux(), ServerConfig{})
	cl := newClient(t, ClientConfig{})
	resp, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(999, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Code != protocol.RespRequestCodeNotSupported || resp.Remark != " request type 999 not supported" || !resp.IsResponse() {
		t.Fatalf("%+v", resp)
	}
}

// rawConn is a test peer that writes and reads frames by hand.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(c *Command) {
	b, err := AppendFrame(nil, c)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) recv() (*Command, []byte) {
	p, err := ReadFrame(r.br, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	c, err := DecodePayload(p)
	if err != nil {
		r.t.Fatal(err)
	}
	return c, p
}

func TestOnewayGetsNoReply(t *testing.T) {
	var oneways atomic.Int32
	mux := NewMux()
	mux.HandleFunc(protocol.ReqUpdateConsumerOffset, func(c *Conn, req *Command) {
		oneways.Add(1)
		_ = c.Reply(NewResponse(req, protocol.RespSuccess, "")) // dropped: request is oneway
	})
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	_, addr := startServer(t, mux, ServerConfig{})
	r := dialRaw(t, addr)

	ow := NewRequest(protocol.ReqUpdateConsumerOffset, nil, nil)
	ow.Opaque, ow.Flag = 100, FlagOneway
	r.send(ow)
	unknown := NewRequest(999, nil, nil)
	unknown.Opaque, unknown.Flag = 101, FlagOneway
	r.send(unknown)
	waitFor(t, "oneway handled", func() bool { return oneways.Load() == 1 })
	hb := NewRequest(protocol.ReqHeartBeat, nil, nil)
	hb.Opaque = 102
	r.send(hb)
	resp, _ := r.recv()
	if resp.Opaque != 102 {
		t.Fatalf("first answer has opaque %d, want 102 (oneways must not be answered)", resp.Opaque)
	}
	// Go clients send "oneway" requests with flag 0: those are answered.
	flag0 := NewRequest(protocol.ReqUpdateConsumerOffset, nil, nil)
	flag0.Opaque = 103
	r.send(flag0)
	if resp, _ := r.recv(); resp.Opaque != 103 || resp.Code != protocol.RespSuccess {
		t.Fatalf("%+v", resp)
	}
}

func TestBinaryRequestGetsBinaryReply(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	_, addr := startServer(t, mux, ServerConfig{})
	r := dialRaw(t, addr)
	req := NewRequest(protocol.ReqHeartBeat, map[string]string{"k": "v"}, []byte("body"))
	req.Opaque, req.SerializeType = 5, SerializeRocketMQ
	r.send(req)
	resp, payload := r.recv()
	if payload[0] != byte(SerializeRocketMQ) || resp.SerializeType != SerializeRocketMQ {
		t.Fatalf("answer serialize type %d", payload[0])
	}
	if resp.Opaque != 5 || resp.ExtFields["k"] != "v" || string(resp.Body) != "body" || !resp.IsResponse() {
		t.Fatalf("%+v", resp)
	}
}

func TestBadFramesCloseConnection(t *testing.T) {
	cases := map[string][]byte{
		"too large":     binary.BigEndian.AppendUint32(nil, 1<<20+1),
		"short length":  {0, 0, 0, 2, 0, 0},
		"bad header":    append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), 4), "nope"...),
		"unknown type":  append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 6), 7<<24|2), "{}"...),
		"header > body": append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 6), 50), "{}"...),
	}
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	srv, addr := startServer(t, mux, ServerConfig{MaxFrameSize: 1 << 20})
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, addr)
			if _, err := r.nc.Write(frame); err != nil {
				t.Fatal(err)
			}
			if _, err := r.br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("read after bad frame: %v, want EOF", err)
			}
		})
	}
	waitFor(t, "connections gone", func() bool { return srv.ConnCount() == 0 })
	// The server still serves.
	cl := newClient(t, ClientConfig{})
	if _, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestServerToClientRequests(t *testing.T) {
	connCh := make(chan *Conn, 1)
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, func(c *Conn, req *Command) {
		echo(c, req)
		select {
		case connCh <- c:
		default:
		}
	})
	_, addr := startServer(t, mux, ServerConfig{})

	notified := make(chan *Command, 1)
	clientMux := NewMux()
	clientMux.HandleFunc(protocol.ReqNotifyConsumerIDsChanged, func(c *Conn, req *Command) { notified <- req })
	clientMux.HandleFunc(protocol.ReqGetConsumerRunningInfo, func(c *Conn, req *Command) {
		resp := NewResponse(req, protocol.RespSuccess, "")
		resp.Body = []byte(`{"running":true}`)
		_ = c.Reply(resp)
	})
	cl := newClient(t, ClientConfig{Handler: clientMux})
	if _, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	sc := <-connCh

	if err := sc.SendOneway(NewRequest(protocol.ReqNotifyConsumerIDsChanged, map[string]string{"consumerGroup": "cg1"}, nil)); err != nil {
		t.Fatal(err)
	}
	if req := <-notified; !req.IsOneway() || req.ExtFields["consumerGroup"] != "cg1" {
		t.Fatalf("%+v", req)
	}
	resp, err := sc.Invoke(ctxT(t, 3*time.Second), NewRequest(protocol.ReqGetConsumerRunningInfo, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != `{"running":true}` {
		t.Fatalf("%+v", resp)
	}
	// A request the client has no handler for.
	resp, err = sc.Invoke(ctxT(t, 3*time.Second), NewRequest(protocol.ReqCheckTransactionState, nil, nil))
	if err != nil || resp.Code != protocol.RespRequestCodeNotSupported {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestOnCloseAndReconnect(t *testing.T) {
	var mu sync.Mutex
	var conns []*Conn
	closedIDs := make(chan uint64, 4)
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, func(c *Conn, req *Command) {
		mu.Lock()
		if len(conns) == 0 || conns[len(conns)-1] != c {
			conns = append(conns, c)
			c.OnClose(func() { closedIDs <- c.ID() })
		}
		mu.Unlock()
		echo(c, req)
	})
	srv, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})
	if _, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	first := conns[0]
	mu.Unlock()
	_ = first.Close() // server drops the client
	if id := <-closedIDs; id != first.ID() {
		t.Fatalf("closed %d, want %d", id, first.ID())
	}
	// The client notices and dials again on demand.
	waitFor(t, "client to forget the closed connection", func() bool {
		c, err := cl.Conn(ctxT(t, time.Second), addr)
		return err == nil && c.LocalAddr() != first.RemoteAddr()
	})
	if _, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
	// The client closes: the server's OnClose runs.
	_ = cl.Close()
	<-closedIDs
	waitFor(t, "server connections gone", func() bool { return srv.ConnCount() == 0 })
	if _, err := cl.Invoke(ctxT(t, time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestInvokeTimeoutAndClosedConn(t *testing.T) {
	var mu sync.Mutex
	var parked []*Command
	var parkedConn *Conn
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		mu.Lock()
		parked, parkedConn = append(parked, req), c
		mu.Unlock()
	})
	_, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := cl.Invoke(ctx, addr, NewRequest(protocol.ReqPullMessage, nil, nil)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	// The same with the timeout argument instead of a context deadline;
	// its pooled timer, reused, must not fire early for the next request.
	for range 2 {
		start := time.Now()
		_, err := cl.InvokeTimeout(context.Background(), addr, NewRequest(protocol.ReqPullMessage, nil, nil), 50*time.Millisecond)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("InvokeTimeout: got %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("InvokeTimeout gave up after %v, before its 50ms", d)
		}
	}
	waitFor(t, "three pulls parked", func() bool { mu.Lock(); defer mu.Unlock(); return len(parked) == 3 })
	// A late answer for the abandoned request is dropped quietly.
	mu.Lock()
	_ = parkedConn.Reply(NewResponse(parked[0], protocol.RespSuccess, ""))
	mu.Unlock()

	// A waiting request fails when the connection closes.
	errCh := make(chan error, 1)
	go func() {
		_, err := cl.Invoke(ctxT(t, 5*time.Second), addr, NewRequest(protocol.ReqPullMessage, nil, nil))
		errCh <- err
	}()
	waitFor(t, "fourth pull parked", func() bool { mu.Lock(); defer mu.Unlock(); return len(parked) == 4 })
	mu.Lock()
	_ = parkedConn.Close()
	mu.Unlock()
	if err := <-errCh; !errors.Is(err, ErrConnClosed) {
		t.Fatalf("got %v, want ErrConnClosed", err)
	}
}

func TestBackPressure(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		started.Add(1)
		<-release
		echo(c, req)
	})
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	_, addr := startServer(t, mux, ServerConfig{MaxInflightPerConn: 2})
	cl := newClient(t, ClientConfig{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.Invoke(ctxT(t, 5*time.Second), addr, NewRequest(protocol.ReqPullMessage, nil, nil)); err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, "two handlers running", func() bool { return started.Load() == 2 })
	// Both slots are held: the read loop pauses, a third request waits.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := cl.Invoke(ctx, addr, NewRequest(protocol.ReqHeartBeat, nil, nil))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the request held back", err)
	}
	close(release)
	wg.Wait()
	if _, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownDrainsInflight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		close(entered)
		go func() { // reply later, from another goroutine
			<-release
			_ = c.Reply(NewResponse(req, protocol.RespSuccess, "late"))
		}()
	})
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(mux, ServerConfig{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	cl := newClient(t, ClientConfig{})

	pull := make(chan *Command, 1)
	go func() {
		resp, err := cl.Invoke(ctxT(t, 5*time.Second), addr, NewRequest(protocol.ReqPullMessage, nil, nil))
		if err != nil {
			t.Error(err)
		}
		pull <- resp
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctxT(t, 5*time.Second)) }()
	waitFor(t, "draining", func() bool { return srv.ep.draining.Load() })
	resp, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil))
	if err != nil || resp.Code != protocol.RespServiceNotAvailable {
		t.Fatalf("request during drain: %+v %v", resp, err)
	}
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned %v before the parked request was answered", err)
	default:
	}
	close(release)
	if resp := <-pull; resp == nil || resp.Remark != "late" {
		t.Fatalf("parked answer %+v", resp)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting")
	}
}

func TestManyConcurrentInvokes(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, echo)
	srv, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				body := []byte(fmt.Sprintf("%d-%d", g, i))
				var resp *Command
				var err error
				if g%2 == 0 {
					resp, err = cl.Invoke(ctxT(t, 5*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, body))
				} else { // answered before the pooled timer fires, which goes back stopped
					resp, err = cl.InvokeTimeout(context.Background(), addr, NewRequest(protocol.ReqHeartBeat, nil, body), 5*time.Second)
				}
				if err != nil {
					t.Error(err)
					return
				}
				if string(resp.Body) != string(body) {
					t.Errorf("got %q want %q", resp.Body, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := srv.ConnCount(); n != 1 {
		t.Fatalf("%d connections for one address, want 1 (concurrent first use shares one dial)", n)
	}
}

func TestHandlerPanicAnswersSystemError(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, func(c *Conn, req *Command) { panic("boom") })
	_, addr := startServer(t, mux, ServerConfig{})
	cl := newClient(t, ClientConfig{})
	resp, err := cl.Invoke(ctxT(t, 3*time.Second), addr, NewRequest(protocol.ReqHeartBeat, nil, nil))
	if err != nil || resp.Code != protocol.RespSystemError {
		t.Fatalf("%+v %v", resp, err)
	}
}
