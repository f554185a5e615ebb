package remoting

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ClientConfig configures a Client. The zero value is usable.
type ClientConfig struct {
	// DialTimeout bounds one dial (also bounded by the caller's ctx).
	// 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxFrameSize, MaxInflightPerConn, WriteTimeout: as in ServerConfig.
	MaxFrameSize       int
	MaxInflightPerConn int
	WriteTimeout       time.Duration
	// Handler serves requests the server sends on a client connection
	// (NOTIFY_CONSUMER_IDS_CHANGED and the like). nil: every such request is
	// answered RespRequestCodeNotSupported (oneway ones are ignored).
	Handler Handler
	// Logger receives connection-level events. nil: disabled.
	Logger *slog.Logger
	// Credentials, when not zero, sign every request sent (RocketMQ ACL),
	// or authenticate each connection once when Authenticate is set.
	Credentials Credentials
	// Authenticate, with Credentials, runs FERRY_AUTH on every connection
	// dialed (see Authenticate): once it succeeds the connection's requests
	// go unsigned and the server takes them as the account's. A server
	// that does not serve FERRY_AUTH, or refuses it, gets signed requests
	// on that connection instead; one that fails to prove it knows the
	// secret key fails the dial.
	Authenticate bool
	// TLS, when not nil, makes every connection a TLS client connection.
	TLS *tls.Config
	// WireResponses decodes the extFields of every response into wire
	// fields (Command.WireFields) instead of a map, as the hot requests are
	// decoded on a server: the caller reads them with the accessors
	// (Lookup, String, Int64, ...) or ExtFieldMap, never ExtFields directly.
	WireResponses bool
}

// Client keeps one connection per remote address, dialed on first use and
// re-dialed on demand after it closes. Requests are multiplexed on it and
// matched by opaque.
type Client struct {
	ep          *endpoint
	dialTimeout time.Duration
	tls         *tls.Config
	creds       Credentials // for FERRY_AUTH; zero: connections are not authenticated
	log         *slog.Logger

	mu      sync.Mutex
	entries map[string]*clientEntry
	closed  bool
}

// clientEntry is one address's connection or the dial in progress for it.
type clientEntry struct {
	ready chan struct{} // closed when the dial finished
	conn  *Conn         // set before ready is closed; nil if the dial failed
	err   error
}

// NewClient returns a Client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	cl := &Client{
		ep:          newEndpoint(cfg.Handler, cfg.Logger, cfg.MaxFrameSize, cfg.MaxInflightPerConn, cfg.WriteTimeout),
		dialTimeout: cfg.DialTimeout,
		tls:         cfg.TLS,
		entries:     make(map[string]*clientEntry),
	}
	if !cfg.Credentials.IsZero() {
		cl.ep.signer = newSigner(cfg.Credentials)
		if cfg.Authenticate {
			cl.creds = cfg.Credentials
		}
	}
	cl.log = cfg.Logger
	if cl.log == nil {
		cl.log = slog.New(slog.DiscardHandler)
	}
	cl.ep.wireResponses = cfg.WireResponses
	return cl
}

// Conn returns the open connection to addr, dialing it if needed.
// Concurrent callers share one dial.
func (cl *Client) Conn(ctx context.Context, addr string) (*Conn, error) {
	for {
		cl.mu.Lock()
		if cl.closed {
			cl.mu.Unlock()
			return nil, ErrClientClosed
		}
		e := cl.entries[addr]
		if e == nil {
			e = &clientEntry{ready: make(chan struct{})}
			cl.entries[addr] = e
			cl.mu.Unlock()
			cl.dial(ctx, addr, e)
		} else {
			cl.mu.Unlock()
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("remoting: connect %s: %w", addr, ctx.Err())
		}
		if e.err != nil {
			return nil, e.err
		}
		select {
		case <-e.conn.done: // closing; its entry is being removed: dial again
			cl.removeEntry(addr, e)
			continue
		default:
			return e.conn, nil
		}
	}
}

func (cl *Client) dial(ctx context.Context, addr string, e *clientEntry) {
	d := net.Dialer{Timeout: cl.dialTimeout}
	var nc net.Conn
	var err error
	if cl.tls != nil {
		td := tls.Dialer{NetDialer: &d, Config: cl.tls}
		nc, err = td.DialContext(ctx, "tcp", addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		e.err = fmt.Errorf("remoting: connect %s: %w", addr, err)
		cl.removeEntry(addr, e)
		close(e.ready)
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := newConn(nc, cl.ep)
	c.OnClose(func() { cl.removeEntry(addr, e) })
	cl.mu.Lock()
	closed := cl.closed
	cl.mu.Unlock()
	e.conn = c
	c.start()
	if !closed && !cl.creds.IsZero() {
		if err := cl.authenticate(ctx, addr, c); err != nil {
			_ = c.Close()
			<-c.closed
			e.err = err
			e.conn = nil
			close(e.ready)
			return
		}
	}
	if closed {
		_ = c.Close()
		<-c.closed
		e.err = ErrClientClosed
		e.conn = nil
	}
	close(e.ready)
}

// authenticate runs FERRY_AUTH on a connection not yet handed out: on
// success its requests go unsigned; when the server does not serve it or
// refuses it they stay signed. The error is for a failed exchange (the
// connection then fails the dial).
func (cl *Client) authenticate(ctx context.Context, addr string, c *Conn) error {
	ctx, cancel := context.WithTimeout(ctx, cl.dialTimeout)
	defer cancel()
	err := Authenticate(ctx, c, cl.creds)
	var refused *AuthRefusedError
	switch {
	case err == nil:
		c.signer = nil
		return nil
	case errors.Is(err, ErrAuthNotSupported):
		cl.log.Debug("remoting: server does not authenticate connections, signing every request", "remote", addr, "error", err)
		return nil
	case errors.As(err, &refused):
		// Signed requests get the same refusal, one by one, with the
		// reason in each answer; an account fixed by an ACL reload is
		// then accepted without a new connection.
		cl.log.Warn("remoting: connection authentication refused, signing every request", "remote", addr, "error", err)
		return nil
	default:
		return fmt.Errorf("remoting: authenticate %s: %w", addr, err)
	}
}

func (cl *Client) removeEntry(addr string, e *clientEntry) {
	cl.mu.Lock()
	if cl.entries[addr] == e {
		delete(cl.entries, addr)
	}
	cl.mu.Unlock()
}

// Invoke sends req to addr and waits for the answer until ctx ends (the
// per-request timeout). req.Opaque and req.Flag are overwritten.
func (cl *Client) Invoke(ctx context.Context, addr string, req *Command) (*Command, error) {
	c, err := cl.Conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.Invoke(ctx, req)
}

// InvokeTimeout is Invoke bounded also by timeout (see Conn.InvokeTimeout).
func (cl *Client) InvokeTimeout(ctx context.Context, addr string, req *Command, timeout time.Duration) (*Command, error) {
	c, err := cl.Conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.InvokeTimeout(ctx, req, timeout)
}

// InvokeOneway sends req to addr with the oneway flag; ctx bounds the dial.
func (cl *Client) InvokeOneway(ctx context.Context, addr string, req *Command) error {
	c, err := cl.Conn(ctx, addr)
	if err != nil {
		return err
	}
	return c.SendOneway(req)
}

// CloseConn closes the connection to addr, if any; the next request dials
// again.
func (cl *Client) CloseConn(addr string) {
	cl.mu.Lock()
	e := cl.entries[addr]
	delete(cl.entries, addr)
	cl.mu.Unlock()
	if e == nil {
		return
	}
	<-e.ready
	if e.conn != nil {
		_ = e.conn.Close()
	}
}

// Close closes every connection, fails requests waiting on them, and waits
// until their goroutines and the handlers of server requests are gone.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	entries := make([]*clientEntry, 0, len(cl.entries))
	for _, e := range cl.entries {
		entries = append(entries, e)
	}
	cl.entries = make(map[string]*clientEntry)
	cl.mu.Unlock()
	var conns []*Conn
	for _, e := range entries {
		<-e.ready
		if e.conn != nil {
			_ = e.conn.Close()
			conns = append(conns, e.conn)
		}
	}
	for _, c := range conns {
		<-c.closed
	}
	err := cl.ep.waitIdle(context.Background())
	cl.ep.pool.close(context.Background())
	return err
}
