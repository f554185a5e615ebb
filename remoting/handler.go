package remoting

import (
	"strconv"
	"sync"
)

// Handler serves requests. ServeRemoting runs on its own goroutine, one per
// request, so a slow request never delays others on the same connection.
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
	_ = c.Reply(NewResponse(req, RespRequestCodeNotSupported,
		" request type "+strconv.Itoa(int(req.Code))+" not supported"))
}
