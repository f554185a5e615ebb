package remoting

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Defaults of ServerConfig and ClientConfig.
const (
	DefaultMaxInflightPerConn = 256
	DefaultWriteTimeout       = 30 * time.Second
	DefaultDialTimeout        = 5 * time.Second
	// DefaultIdleTimeout is RocketMQ's channel idle time.
	DefaultIdleTimeout = 120 * time.Second
	DefaultReadTimeout = 60 * time.Second
)

// ServerConfig configures a Server. The zero value is usable.
type ServerConfig struct {
	// MaxFrameSize is the largest frame accepted; a larger one closes the
	// connection. 0 means DefaultMaxFrameSize (16 MiB).
	MaxFrameSize int
	// MaxInflightPerConn bounds handlers running at once per connection;
	// when reached the connection's read loop pauses (back-pressure).
	// 0 means DefaultMaxInflightPerConn.
	MaxInflightPerConn int
	// WriteTimeout bounds one batched write to a peer; a peer that does
	// not read for that long is disconnected. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout closes a connection on which nothing has been received
	// for that long while no request of it is being served (a held pull
	// is not idle). 0 means DefaultIdleTimeout; negative: never.
	IdleTimeout time.Duration
	// ReadTimeout bounds receiving one frame once its first byte arrived,
	// so that a client trickling bytes is cut off. 0 means
	// DefaultReadTimeout; negative: no bound.
	ReadTimeout time.Duration
	// MaxConns and MaxConnsPerAddr bound the connections open at once,
	// overall and from one client IP address (see GuardedListener). 0
	// means DefaultMaxConns / DefaultMaxConnsPerAddr; negative: no bound.
	MaxConns        int
	MaxConnsPerAddr int
	// Logger receives connection-level events. nil: disabled.
	Logger *slog.Logger
}

// orDefault is v, or def when v is 0, or 0 (none) when v is negative.
func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Server accepts remoting connections and serves their requests with a
// Handler (usually a *Mux).
//
// Goroutines: one accept loop per Serve call (the caller's), and two per
// connection (see Conn), plus one per request being handled. All are gone
// once Shutdown returns nil.
type Server struct {
	ep     *endpoint
	limits ListenerLimits

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[uint64]*Conn
	shutdown  bool
	quit      chan struct{}  // closed by Shutdown
	serving   sync.WaitGroup // Serve calls in progress; Add only under mu while !shutdown
}

// NewServer returns a Server that serves requests with h (nil: every
// request is answered RespRequestCodeNotSupported).
func NewServer(h Handler, cfg ServerConfig) *Server {
	s := &Server{
		ep: newEndpoint(h, cfg.Logger, cfg.MaxFrameSize, cfg.MaxInflightPerConn, cfg.WriteTimeout),
		limits: ListenerLimits{
			MaxConns: orDefault(cfg.MaxConns, DefaultMaxConns), MaxConnsPerAddr: orDefault(cfg.MaxConnsPerAddr, DefaultMaxConnsPerAddr),
			Port: "remoting", Logger: cfg.Logger,
		},
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[uint64]*Conn),
		quit:      make(chan struct{}),
	}
	s.ep.connClosed = s.removeConn
	s.ep.inlineWrites = true
	s.ep.idleTimeout = orDefault(cfg.IdleTimeout, DefaultIdleTimeout)
	s.ep.readTimeout = orDefault(cfg.ReadTimeout, DefaultReadTimeout)
	return s
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. ln is closed when Serve returns. Serve accepts through
// a GuardedListener with the configured connection limits: it outlives
// running out of file descriptors.
func (s *Server) Serve(ln net.Listener) error {
	ln = GuardListener(ln, s.limits)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		_ = ln.Close()
	}()

	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isShutdown() {
				return ErrServerClosed
			}
			return err
		}
		c := newConn(nc, s.ep)
		s.mu.Lock()
		if s.shutdown {
			s.mu.Unlock()
			_ = nc.Close()
			return ErrServerClosed
		}
		s.conns[c.id] = c
		s.mu.Unlock()
		c.log.Debug("remoting: connection accepted")
		c.start()
	}
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

func (s *Server) removeConn(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.mu.Unlock()
	c.log.Debug("remoting: connection closed")
}

// ConnCount returns the number of open connections.
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, answers new requests on existing
// connections with RespServiceNotAvailable, waits until every dispatched
// request has been answered (including replies sent later by parked
// handlers) and every handler has returned, then closes the connections
// after flushing their queued frames. If ctx ends first, connections are
// closed anyway and ctx's error returned; handlers still running are then
// the caller's to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shutdown {
		close(s.quit)
	}
	s.shutdown = true
	for ln := range s.listeners {
		_ = ln.Close()
	}
	s.mu.Unlock()
	s.serving.Wait()
	s.ep.draining.Store(true)

	err := s.ep.waitIdle(ctx)

	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	for _, c := range conns {
		<-c.closed
	}
	s.ep.pool.close(ctx)
	return err
}
