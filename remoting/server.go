package remoting

import (
	"context"
	"errors"
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
	// Logger receives connection-level events. nil: disabled.
	Logger *slog.Logger
}

// Server accepts remoting connections and serves their requests with a
// Handler (usually a *Mux).
//
// Goroutines: one accept loop per Serve call (the caller's), and two per
// connection (see Conn), plus one per request being handled. All are gone
// once Shutdown returns nil.
type Server struct {
	ep *endpoint

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
		ep:        newEndpoint(h, cfg.Logger, cfg.MaxFrameSize, cfg.MaxInflightPerConn, cfg.WriteTimeout),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[uint64]*Conn),
		quit:      make(chan struct{}),
	}
	s.ep.connClosed = s.removeConn
	return s
}

// Serve accepts connections on ln until Shutdown, then returns
// ErrServerClosed. ln is closed when Serve returns.
func (s *Server) Serve(ln net.Listener) error {
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

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isShutdown() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, stay up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.ep.log.Warn("remoting: accept failed", "error", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-s.quit:
					t.Stop()
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
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

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
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
