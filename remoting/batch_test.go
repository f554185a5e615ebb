package remoting

import (
	"strconv"
	"sync"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// batchEcho answers ReqSendMessage (batched) and ReqHeartBeat (not) with
// the request's body, recording the groups ServeBatch saw.
type batchEcho struct {
	*Mux
	mu     sync.Mutex
	groups [][]string
	panics bool
}

func (h *batchEcho) ServeRemoting(c *Conn, req *Command) {
	h.ServeBatch(c, []*Command{req})
}

func (h *batchEcho) ServeBatch(c *Conn, reqs []*Command) {
	var g []string
	for _, r := range reqs {
		g = append(g, string(r.Body))
	}
	h.mu.Lock()
	h.groups = append(h.groups, g)
	panics := h.panics
	h.mu.Unlock()
	if panics {
		panic("boom")
	}
	for _, r := range reqs {
		resp := NewResponse(r, protocol.RespSuccess, "")
		resp.Body = r.Body
		_ = c.Reply(resp)
	}
}

// sendAll writes the frames of reqs with one write, so that the server
// reads them together.
func (r *rawConn) sendAll(reqs []*Command) {
	r.t.Helper()
	var buf []byte
	for i, req := range reqs {
		req.Opaque = int32(i + 1)
		var err error
		if buf, err = AppendFrame(buf, req); err != nil {
			r.t.Fatal(err)
		}
	}
	if _, err := r.nc.Write(buf); err != nil {
		r.t.Fatal(err)
	}
}

// answers reads n frames, by opaque.
func (r *rawConn) answers(n int) map[int32]*Command {
	r.t.Helper()
	out := map[int32]*Command{}
	for len(out) < n {
		c, _ := r.recv()
		out[c.Opaque] = c
	}
	return out
}

func TestRequestsReadTogetherAreServedAsAGroup(t *testing.T) {
	h := &batchEcho{Mux: NewMux()}
	h.HandleBatch(protocol.ReqSendMessage, h)
	h.HandleFunc(protocol.ReqHeartBeat, echo)
	_, addr := startServer(t, h.Mux, ServerConfig{})
	r := dialRaw(t, addr)

	// Five sends, a heartbeat, three sends, a oneway send: the heartbeat
	// splits the groups, the oneway send is served alone and not answered.
	var reqs []*Command
	for i := range 10 {
		code := int16(protocol.ReqSendMessage)
		if i == 5 {
			code = protocol.ReqHeartBeat
		}
		reqs = append(reqs, NewRequest(code, nil, []byte("m"+strconv.Itoa(i))))
	}
	reqs[9].Flag = FlagOneway
	r.sendAll(reqs)
	answers := r.answers(9)
	for i, req := range reqs[:9] {
		a := answers[req.Opaque]
		if a == nil || a.Code != protocol.RespSuccess || string(a.Body) != "m"+strconv.Itoa(i) {
			t.Fatalf("request %d answered %+v", i, a)
		}
	}
	waitFor(t, "the oneway send served", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, g := range h.groups {
			n += len(g)
		}
		return n == 9
	})
	h.mu.Lock()
	groups := h.groups
	h.mu.Unlock()
	// Groups run concurrently: check each on its own. One write normally
	// arrives as one read ({m0..m4}, {m6..m8}, {m9}); a read split by the
	// kernel may split a group, never join across the heartbeat.
	largest := 0
	for _, g := range groups {
		largest = max(largest, len(g))
		for i := 1; i < len(g); i++ {
			prev, _ := strconv.Atoi(g[i-1][1:])
			cur, _ := strconv.Atoi(g[i][1:])
			if cur != prev+1 || cur == 5 || prev == 5 || (prev < 5) != (cur < 5) || cur == 9 {
				t.Fatalf("group %q mixes requests that must not be served together (all: %q)", g, groups)
			}
		}
	}
	if largest < 2 {
		t.Fatalf("no requests served together: %q", groups)
	}

	// A panicking group answers every request with SYSTEM_ERROR.
	h.mu.Lock()
	h.panics = true
	h.mu.Unlock()
	r.sendAll(reqs[:3])
	for op, a := range r.answers(3) {
		if a.Code != protocol.RespSystemError {
			t.Fatalf("opaque %d answered %d after a panic", op, a.Code)
		}
	}
}

// A group never needs more in-flight slots than the connection has.
func TestGroupsRespectTheInflightLimit(t *testing.T) {
	h := &batchEcho{Mux: NewMux()}
	h.HandleBatch(protocol.ReqSendMessage, h)
	_, addr := startServer(t, h.Mux, ServerConfig{MaxInflightPerConn: 2})
	r := dialRaw(t, addr)
	var reqs []*Command
	for i := range 10 {
		reqs = append(reqs, NewRequest(protocol.ReqSendMessage, nil, []byte("m"+strconv.Itoa(i))))
	}
	r.sendAll(reqs)
	r.answers(10)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range h.groups {
		if len(g) > 2 {
			t.Fatalf("group of %d with 2 slots: %q", len(g), h.groups)
		}
	}
}

// A request followed by a response frame (and nothing else) is served: the
// group is not left waiting for the socket.
func TestGroupBeforeAResponseFrameIsServed(t *testing.T) {
	h := &batchEcho{Mux: NewMux()}
	h.HandleBatch(protocol.ReqSendMessage, h)
	_, addr := startServer(t, h.Mux, ServerConfig{})
	r := dialRaw(t, addr)
	req := NewRequest(protocol.ReqSendMessage, nil, []byte("m0"))
	req.Opaque = 1
	buf, _ := AppendFrame(nil, req)
	stray := NewResponse(&Command{Opaque: 999}, protocol.RespSuccess, "")
	buf, _ = AppendFrame(buf, stray)
	if _, err := r.nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	if a := r.answers(1)[1]; a == nil || string(a.Body) != "m0" {
		t.Fatalf("answer %+v", a)
	}
}
