package acl

import (
	"context"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// batchOK answers every request SUCCESS, in batches when it can.
type batchOK struct{ batches, served atomic.Int64 }

func (h *batchOK) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	h.served.Add(1)
	_ = c.Reply(remoting.NewResponse(req, protocol.RespSuccess, ""))
}

func (h *batchOK) ServeBatch(c *remoting.Conn, reqs []*remoting.Command) {
	h.batches.Add(1)
	for _, req := range reqs {
		h.ServeRemoting(c, req)
	}
}

// TestGuardOverRemoting: pipelined sends on one connection, signed and
// not, each get their own answer through the guard's batch path, and the
// connection keeps serving after refusals.
func TestGuardOverRemoting(t *testing.T) {
	rules := mustParse(t, tableFile)
	h := &batchOK{}
	mux := remoting.NewMux()
	mux.HandleBatch(protocol.ReqSendMessageV2, h)
	srv := remoting.NewServer(NewGuard(mux, GuardConfig{Rules: func() *Rules { return rules }}), remoting.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}()
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	conn, err := cl.Conn(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := remoting.NewRequest(protocol.ReqSendMessageV2, map[string]string{"b": "T", "n": strconv.Itoa(i)}, []byte("x"))
			signed := i%3 != 0
			if signed {
				remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}.Sign(req)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := conn.Invoke(ctx, req)
			switch {
			case err != nil:
				errs <- err.Error()
			case signed && resp.Code != protocol.RespSuccess:
				errs <- "signed request refused: " + resp.Remark
			case !signed && resp.Code != protocol.RespNoPermission:
				errs <- "unsigned request answered " + strconv.Itoa(int(resp.Code))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := h.served.Load(); got != n-(n+2)/3 {
		t.Fatalf("served %d, want %d", got, n-(n+2)/3)
	}
	t.Logf("%d batches", h.batches.Load())
}

// TestGuardKeepsInlinePath: requests the wrapped handler serves on the
// connection's read goroutine (remoting.Inliner) are checked and served
// there through the Guard too; refused ones are answered from there, and
// others still go to a handler goroutine.
func TestGuardKeepsInlinePath(t *testing.T) {
	rules := mustParse(t, tableFile)
	onRead := make(chan bool, 1)
	h := func(c *remoting.Conn, req *remoting.Command) {
		buf := make([]byte, 64<<10)
		onRead <- strings.Contains(string(buf[:runtime.Stack(buf, false)]), "(*Conn).readLoop")
		_ = c.Reply(remoting.NewResponse(req, protocol.RespSuccess, ""))
	}
	mux := remoting.NewMux()
	mux.HandleFunc(protocol.ReqSendMessageV2, h)
	mux.HandleFunc(protocol.ReqSendMessage, h)
	mux.SetInlinable(protocol.ReqSendMessageV2, nil)
	g := NewGuard(mux, GuardConfig{Rules: func() *Rules { return rules }})
	if g.Inlinable(remoting.NewRequest(protocol.ReqFerryAuth, nil, nil)) {
		t.Fatal("FERRY_AUTH inlinable")
	}
	if NewGuard(remoting.HandlerFunc(h), GuardConfig{}).Inlinable(remoting.NewRequest(protocol.ReqSendMessageV2, nil, nil)) {
		t.Fatal("a Guard over a handler that inlines nothing says inlinable")
	}
	srv := remoting.NewServer(g, remoting.ServerConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}()
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	invoke := func(code int16, signed bool) *remoting.Command {
		t.Helper()
		req := remoting.NewRequest(code, map[string]string{"b": "T", "topic": "T"}, []byte("x"))
		if signed {
			remoting.Credentials{AccessKey: "user-key", SecretKey: "user-secret"}.Sign(req)
		}
		resp, err := cl.InvokeTimeout(context.Background(), ln.Addr().String(), req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, tc := range []struct {
		code int16
		want bool
	}{{protocol.ReqSendMessageV2, true}, {protocol.ReqSendMessage, false}} {
		if resp := invoke(tc.code, true); resp.Code != protocol.RespSuccess {
			t.Fatalf("code %d: answered %d %q", tc.code, resp.Code, resp.Remark)
		}
		if got := <-onRead; got != tc.want {
			t.Fatalf("code %d served on the read goroutine: %v, want %v", tc.code, got, tc.want)
		}
	}
	if resp := invoke(protocol.ReqSendMessageV2, false); resp.Code != protocol.RespNoPermission {
		t.Fatalf("unsigned send answered %d %q", resp.Code, resp.Remark)
	}
	select {
	case <-onRead:
		t.Fatal("refused request reached the handler")
	default:
	}
}
