package remoting

import (
	"strconv"
	"sync"

	"github.com/ferrymq/ferry/protocol"
)

// Handler serves requests. ServeRemoting runs on a goroutine of its own,
// one per request, so a slow request never delays others on the same
// connection (requests of a Batcher's codes read together share one; see
// Batcher).
// It answers with c.Reply(NewResponse(req, ...)), either before returning or
// later from any goroutine (a parked long-poll returns at once and replies
// when data arrives). Answers to oneway requests are dropped by Reply.
//
// While ServeRemoting runs it holds one of the connection's in-flight slots
// (ServerConfig.MaxInflightPerConn); when all are held the connection's read
// loop pauses. A request parked after ServeRemoting returned holds no slot.
type Handler interface {
	ServeRemoting(c *Conn, req *Command)
}

// Batcher is implemented by a Handler that serves some requests better
// together: when a connection has several such requests already read (a
// client pipelining sends), they go to one goroutine and one ServeBatch
// call, in the order they arrived, instead of a goroutine each. ServeBatch
// must answer every request it is given. Oneway requests are never
// batched.
type Batcher interface {
	Batchable(req *Command) bool
	ServeBatch(c *Conn, reqs []*Command)
}

// Inliner is implemented by a Handler that serves some requests quickly
// and without blocking (never waiting on a disk sync, a peer or a lock
// held across one): those are served on the connection's read goroutine,
// with no hand-off to a handler goroutine (at low rates a thread wake-up
// per request). The connection reads its next request once the handler
// returns, so a request that may block must not be Inlinable. A request
// read in a group (see Batcher) is served with its group.
type Inliner interface {
	Inlinable(req *Command) bool
}

// BatchHandler serves requests one at a time or in groups (see Batcher).
type BatchHandler interface {
	Handler
	ServeBatch(c *Conn, reqs []*Command)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(c *Conn, req *Command)

// ServeRemoting calls f(c, req).
func (f HandlerFunc) ServeRemoting(c *Conn, req *Command) { f(c, req) }

// Mux routes requests to handlers by request code. Codes without a handler
// are answered RespRequestCodeNotSupported, as a Java server does. The zero
// value is ready to use; Handle may be called while serving.
type Mux struct {
	mu       sync.RWMutex
	handlers map[int16]Handler
	batch    map[int16]BatchHandler
	inline   map[int16]func(req *Command) bool
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{} }

// Handle registers h for code, replacing any earlier handler.
func (m *Mux) Handle(code int16, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[int16]Handler)
	}
	m.handlers[code] = h
	delete(m.batch, code)
	delete(m.inline, code)
}

// SetInlinable marks requests of code, registered already, as served on
// the connection's read goroutine when when(req) is true (nil: always);
// see Inliner. Handle and HandleBatch for code undo it.
func (m *Mux) SetInlinable(code int16, when func(req *Command) bool) {
	if when == nil {
		when = func(*Command) bool { return true }
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inline == nil {
		m.inline = make(map[int16]func(req *Command) bool)
	}
	m.inline[code] = when
}

// Inlinable reports whether req's code was marked with SetInlinable and
// its condition holds for req.
func (m *Mux) Inlinable(req *Command) bool {
	m.mu.RLock()
	when := m.inline[req.Code]
	m.mu.RUnlock()
	return when != nil && when(req)
}

// HandleBatch registers h for code; consecutive requests of the code read
// together are served with one h.ServeBatch.
func (m *Mux) HandleBatch(code int16, h BatchHandler) {
	m.Handle(code, h)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.batch == nil {
		m.batch = make(map[int16]BatchHandler)
	}
	m.batch[code] = h
}

// Batchable reports whether req's code was registered with HandleBatch.
func (m *Mux) Batchable(req *Command) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.batch[req.Code] != nil
}

// ServeBatch serves reqs in order, each run of one code with one call of
// its handler.
func (m *Mux) ServeBatch(c *Conn, reqs []*Command) {
	for len(reqs) > 0 {
		n := 1
		for n < len(reqs) && reqs[n].Code == reqs[0].Code {
			n++
		}
		m.mu.RLock()
		h := m.batch[reqs[0].Code]
		m.mu.RUnlock()
		if h == nil { // re-registered meanwhile
			for _, req := range reqs[:n] {
				m.ServeRemoting(c, req)
			}
		} else {
			h.ServeBatch(c, reqs[:n])
		}
		reqs = reqs[n:]
	}
}

// Codes returns the registered request codes, in no order.
func (m *Mux) Codes() []int16 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	codes := make([]int16, 0, len(m.handlers))
	for c := range m.handlers {
		codes = append(codes, c)
	}
	return codes
}

// HandleFunc registers f for code.
func (m *Mux) HandleFunc(code int16, f func(c *Conn, req *Command)) {
	m.Handle(code, HandlerFunc(f))
}

// ServeRemoting dispatches req by its code.
func (m *Mux) ServeRemoting(c *Conn, req *Command) {
	m.mu.RLock()
	h := m.handlers[req.Code]
	m.mu.RUnlock()
	if h == nil {
		NotSupported(c, req)
		return
	}
	h.ServeRemoting(c, req)
}

// NotSupported answers req with RespRequestCodeNotSupported and the remark
// a Java server uses.
func NotSupported(c *Conn, req *Command) {
	_ = c.Reply(NewResponse(req, protocol.RespRequestCodeNotSupported,
		" request type "+strconv.Itoa(int(req.Code))+" not supported"))
}
