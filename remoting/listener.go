package remoting

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Defaults of ListenerLimits (and of the matching ServerConfig fields).
const (
	DefaultMaxConns        = 10000
	DefaultMaxConnsPerAddr = 1000
)

// Accept back-off after a transient error, as net/http's: 5 ms doubling
// to 1 s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
	// refuseWriteTimeout bounds ListenerLimits.Refuse's write.
	refuseWriteTimeout = 100 * time.Millisecond
)

// ListenerLimits bounds the connections a GuardedListener hands out.
type ListenerLimits struct {
	// MaxConns bounds the connections open at once; one more is closed as
	// soon as it is accepted. 0: unlimited.
	MaxConns int
	// MaxConnsPerAddr bounds the connections open at once from one client
	// IP address. 0: unlimited.
	MaxConnsPerAddr int
	// Port names the listener in log lines ("remoting", "http").
	Port string
	// Refuse, if set, may write a last word to a connection over a limit
	// (an HTTP 503) before it is closed; why says which limit. It runs on
	// the accept loop, with a short write deadline set.
	Refuse func(c net.Conn, why string)
	// Logger receives the refusals and accept errors, rate-limited.
	Logger *slog.Logger
	// LogEvery is the least time between two log lines of one kind
	// (refusals, accept errors); 0 means 10 s. Lines in between are
	// counted and the count is logged with the next.
	LogEvery time.Duration
}

// GuardedListener is a net.Listener for a server's accept loop that never
// dies of a transient error and bounds the connections it hands out.
//
//   - Out of file descriptors (EMFILE, ENFILE), out of buffers and the
//     like: Accept backs off (5 ms doubling to 1 s, as net/http does) and
//     tries again instead of returning the error, so an accept loop that
//     gives up on the first error (fasthttp's) stays up and serves again
//     once descriptors are free. Only Close, or an error that cannot pass,
//     ends Accept.
//   - Over MaxConns or MaxConnsPerAddr, a connection is closed as soon as
//     it is accepted, with a log line.
//
// A connection counts until it is closed. Protocols that wrap connections
// (TLS) wrap the GuardedListener, so that what they refuse is counted too.
type GuardedListener struct {
	net.Listener
	lim       ListenerLimits
	quit      chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	open    int
	perAddr map[netip.Addr]int

	refused    rateLimitedLog
	acceptErrs rateLimitedLog
}

// GuardListener wraps ln; see GuardedListener.
func GuardListener(ln net.Listener, lim ListenerLimits) *GuardedListener {
	if lim.LogEvery <= 0 {
		lim.LogEvery = 10 * time.Second
	}
	return &GuardedListener{
		Listener: ln, lim: lim, quit: make(chan struct{}), perAddr: make(map[netip.Addr]int),
		refused: rateLimitedLog{every: lim.LogEvery}, acceptErrs: rateLimitedLog{every: lim.LogEvery},
	}
}

// Accept waits for a connection within the limits; see GuardedListener.
func (l *GuardedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if l.isClosed() {
				return nil, net.ErrClosed
			}
			if !transientAcceptError(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			if n, ok := l.acceptErrs.allow(); ok {
				l.log().Warn("accept failed, retrying (out of file descriptors? raise ulimit -n)", "error", err,
					"port", l.lim.Port, "backoff_ms", backoff.Milliseconds(), "errors_not_logged", n)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.quit:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		backoff = 0
		if c := l.admit(nc); c != nil {
			return c, nil
		}
	}
}

// admit counts nc in or closes it when it is over a limit.
func (l *GuardedListener) admit(nc net.Conn) net.Conn {
	addr := remoteIP(nc)
	l.mu.Lock()
	var why string
	var limit int
	switch {
	case l.lim.MaxConns > 0 && l.open >= l.lim.MaxConns:
		why, limit = "too many connections", l.lim.MaxConns
	case l.lim.MaxConnsPerAddr > 0 && l.perAddr[addr] >= l.lim.MaxConnsPerAddr:
		why, limit = "too many connections from one address", l.lim.MaxConnsPerAddr
	default:
		l.open++
		l.perAddr[addr]++
		l.mu.Unlock()
		return &guardedConn{Conn: nc, l: l, addr: addr}
	}
	open, fromAddr := l.open, l.perAddr[addr]
	l.mu.Unlock()
	if l.lim.Refuse != nil {
		_ = nc.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		l.lim.Refuse(nc, why)
	}
	_ = nc.Close()
	if n, ok := l.refused.allow(); ok {
		l.log().Warn("connection refused: "+why, "port", l.lim.Port, "remote", nc.RemoteAddr().String(),
			"open", open, "open_from_addr", fromAddr, "limit", limit, "refusals_not_logged", n)
	}
	return nil
}

func (l *GuardedListener) release(addr netip.Addr) {
	l.mu.Lock()
	l.open--
	if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
		delete(l.perAddr, addr)
	}
	l.mu.Unlock()
}

// Conns returns the number of connections handed out and not yet closed.
func (l *GuardedListener) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Close closes the listener; an Accept backing off returns at once.
func (l *GuardedListener) Close() error {
	l.closeOnce.Do(func() { close(l.quit) })
	return l.Listener.Close()
}

func (l *GuardedListener) isClosed() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// transientAcceptError reports whether an accept error passes by itself:
// the process or the system is out of descriptors or memory, or one
// connection failed before it was accepted.
func transientAcceptError(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EPROTO, syscall.EPERM} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || isTemporary(err)
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func remoteIP(nc net.Conn) netip.Addr {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(nc.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// guardedConn gives its place back to the listener when closed.
type guardedConn struct {
	net.Conn
	l        *GuardedListener
	addr     netip.Addr
	released sync.Once
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.released.Do(func() { c.l.release(c.addr) })
	return err
}

// rawConn is the socket of the connection guarded, for writes that must
// not block (see Conn.writeInline); nil when it has none (TLS).
func (c *guardedConn) rawConn() syscall.RawConn { return rawConnOf(c.Conn) }

// rateLimitedLog lets one line of a kind through per interval and counts
// the others.
type rateLimitedLog struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now and how many were not
// since the last one.
func (r *rateLimitedLog) allow() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return 0, false
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return n, true
}

// log is the configured logger, or one that drops everything.
func (l *GuardedListener) log() *slog.Logger {
	if l.lim.Logger == nil {
		return discardLogger
	}
	return l.lim.Logger
}

var discardLogger = slog.New(slog.DiscardHandler)
