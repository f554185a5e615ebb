package remoting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

const (
	readBufferSize = 64 << 10
	// pooledHeadMax is the largest frame-head buffer returned to headPool.
	pooledHeadMax = 64 << 10
	// closeFlushTimeout bounds the final flush of queued frames on Close.
	closeFlushTimeout = 2 * time.Second
)

// connIDs hands out process-unique connection ids.
var connIDs atomic.Uint64

var headPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

func putHead(hp *[]byte) {
	if cap(*hp) <= pooledHeadMax {
		*hp = (*hp)[:0]
		headPool.Put(hp)
	}
}

// endpoint is what a Server or a Client shares with its connections.
type endpoint struct {
	handler      Handler
	log          *slog.Logger
	maxFrame     int
	maxInflight  int
	writeTimeout time.Duration
	connClosed   func(*Conn)
	pool         *workerPool
	batcher      Batcher // the handler, if it serves some requests in groups
	inliner      Inliner // the handler, if it serves some requests on the read goroutine
	signer       *signer // signs every request sent (clients); nil: none
	// wireResponses decodes responses into wire fields (clients; see
	// ClientConfig.WireResponses).
	wireResponses bool
	// inlineWrites lets a connection's answers be written by the
	// goroutine that has them (servers; see Conn.writeInline).
	inlineWrites bool

	// busy counts handler goroutines running plus requests not yet answered
	// (non-oneway); idle is rung whenever it drops to zero.
	busy atomic.Int64
	idle chan struct{}
	// draining makes read loops answer new requests with
	// RespServiceNotAvailable instead of dispatching them.
	draining atomic.Bool

	// idleTimeout and readTimeout (server side only; 0: none) bound
	// waiting for a request and receiving one; see ServerConfig.
	idleTimeout, readTimeout time.Duration
	slowLog                  rateLimitedLog // connections cut off by readTimeout
}

func newEndpoint(h Handler, log *slog.Logger, maxFrame, maxInflight int, writeTimeout time.Duration) *endpoint {
	if h == nil {
		h = NewMux()
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	if maxInflight <= 0 {
		maxInflight = DefaultMaxInflightPerConn
	}
	if writeTimeout <= 0 {
		writeTimeout = DefaultWriteTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	batcher, _ := h.(Batcher)
	inliner, _ := h.(Inliner)
	return &endpoint{
		inliner: inliner,
		handler: h, log: log, maxFrame: maxFrame, maxInflight: maxInflight,
		writeTimeout: writeTimeout, idle: make(chan struct{}, 1), pool: newWorkerPool(maxWorkers),
		batcher: batcher, slowLog: rateLimitedLog{every: 10 * time.Second},
	}
}

func (e *endpoint) addBusy(n int64) {
	if e.busy.Add(n) == 0 {
		select {
		case e.idle <- struct{}{}:
		default:
		}
	}
}

// waitIdle waits until busy is zero or ctx ends.
func (e *endpoint) waitIdle(ctx context.Context) error {
	for e.busy.Load() != 0 {
		select {
		case <-e.idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Conn is one remoting connection, on the server or the client side.
//
// Goroutines: readLoop (owns the reader, dispatches requests, delivers
// responses) and writeLoop (writes what is not written by the goroutine
// answering; see writeInline). Both end after Close; teardown
// (failing waiting Invokes, OnClose callbacks) runs on readLoop's way out.
type Conn struct {
	id     uint64
	nc     net.Conn
	remote string
	ep     *endpoint
	log    *slog.Logger

	nextOpaque atomic.Int32
	// unanswered counts requests dispatched to the handler and not yet
	// answered; teardown gives them back to ep.busy.
	unanswered atomic.Int64

	doorbell   chan struct{} // 1 slot: frames are queued
	done       chan struct{} // closed by Close
	writerDone chan struct{} // closed when writeLoop ends
	closed     chan struct{} // closed when teardown finished
	slots      chan struct{} // in-flight request slots

	mu       sync.Mutex
	wq       net.Buffers // frame heads and bodies waiting for the writer
	wheads   []*[]byte   // pooled heads referenced by wq
	writing  bool        // a goroutine owns out and writes (see writeInline)
	handoff  bool        // with writing: writeLoop is to take out over
	closing  bool        // no more frames accepted
	err      error       // first error: why the connection closed
	pending  map[int32]chan *Command
	onClose  []func()
	tornDown bool

	// out and outHeads are the frames being written, owned by the
	// goroutine that set writing: queued frames move from wq behind them.
	out      net.Buffers
	outHeads []*[]byte
	// raw is the socket, for answers written by the goroutine that has
	// them without waiting for it (server connections over TCP; nil:
	// every frame goes through writeLoop). corked counts request groups
	// being served, whose answers go through writeLoop so that one write
	// carries several.
	raw    syscall.RawConn
	iov    iovScratch // scratch for writeNow, owned by the goroutine writing
	corked atomic.Int32

	// rdl is the read deadline in force (zero: none) and rdFrame whether
	// it bounds a frame begun (the read timeout) rather than the wait for
	// one (the idle timeout); readLoop's own (see awaitFrame).
	rdl     time.Time
	rdFrame bool

	// signer signs the requests sent on a client connection (nil: none);
	// set before the connection is handed out, cleared by a successful
	// FERRY_AUTH.
	signer *signer
	// auth is what the server's handler in front (package acl) keeps about
	// the connection's authentication.
	auth atomic.Value
}

func newConn(nc net.Conn, ep *endpoint) *Conn {
	c := &Conn{
		id:         connIDs.Add(1),
		nc:         nc,
		remote:     nc.RemoteAddr().String(),
		ep:         ep,
		doorbell:   make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		closed:     make(chan struct{}),
		slots:      make(chan struct{}, ep.maxInflight),
		pending:    make(map[int32]chan *Command),
	}
	c.log = ep.log.With("conn_id", c.id, "remote", c.remote)
	c.signer = ep.signer
	if ep.inlineWrites {
		c.raw = rawConnOf(nc)
	}
	return c
}

func (c *Conn) start() {
	go c.writeLoop()
	go c.readLoop()
}

// ID returns a process-unique id of the connection.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address as "ip:port".
func (c *Conn) RemoteAddr() string { return c.remote }

// LocalAddr returns the local address as "ip:port".
func (c *Conn) LocalAddr() string { return c.nc.LocalAddr().String() }

// Done is closed when the connection starts closing.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Closed is closed when the connection is fully closed and its OnClose
// callbacks have run.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Err returns why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// LoadOrStoreAuth keeps v as the connection's authentication state, for
// the handler that authenticates connections (package acl), unless one is
// kept already; it returns the state kept. v must always be a non-nil
// value of one type.
func (c *Conn) LoadOrStoreAuth(v any) any {
	if c.auth.CompareAndSwap(nil, v) {
		return v
	}
	return c.auth.Load()
}

// Auth returns the state LoadOrStoreAuth kept, or nil.
func (c *Conn) Auth() any { return c.auth.Load() }

// OnClose registers fn to run once when the connection closes (on the
// connection's read goroutine, after waiting Invokes have failed). If the
// connection is already closed fn runs now, on the caller's goroutine.
func (c *Conn) OnClose(fn func()) {
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		fn()
		return
	}
	c.onClose = append(c.onClose, fn)
	c.mu.Unlock()
}

// Close stops accepting frames, flushes those already queued (for at most
// a couple of seconds) and closes the socket. It does not wait; see Closed.
func (c *Conn) Close() error {
	c.closeWith(ErrConnClosed)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// closedErr wraps the reason the connection closed in ErrConnClosed.
func (c *Conn) closedErrLocked() error {
	if c.err == nil || errors.Is(c.err, ErrConnClosed) {
		return ErrConnClosed
	}
	return fmt.Errorf("%w: %w", ErrConnClosed, c.err)
}

// Reply sends resp, the answer to a request received on c. Answers to
// oneway requests (built with NewResponse) are dropped. Safe from any
// goroutine. resp.Body is written without being copied: it must not change
// until written.
func (c *Conn) Reply(resp *Command) error {
	if !resp.IsResponse() {
		return fmt.Errorf("remoting: Reply with a request (flag %d); use SendOneway or Invoke", resp.Flag)
	}
	if resp.noReply {
		return nil
	}
	err := c.enqueue(resp)
	c.answered()
	return err
}

// answered gives one unanswered request back to the endpoint's busy count.
func (c *Conn) answered() {
	for {
		n := c.unanswered.Load()
		if n <= 0 {
			return
		}
		if c.unanswered.CompareAndSwap(n, n-1) {
			c.ep.addBusy(-1)
			return
		}
	}
}

// SendOneway sends req as a oneway request (flag bit1 set; a fresh opaque is
// assigned). The peer sends no answer.
func (c *Conn) SendOneway(req *Command) error {
	req.Opaque = c.nextOpaque.Add(1)
	req.Flag = (req.Flag | FlagOneway) &^ FlagResponse
	if c.signer != nil {
		c.signer.sign(req)
	}
	return c.enqueue(req)
}

// Invoke sends req (a fresh opaque is assigned, flag bits cleared) and waits
// for the peer's answer, until ctx ends or the connection closes. A non-zero
// response code is not an error here; see Command.Err.
func (c *Conn) Invoke(ctx context.Context, req *Command) (*Command, error) {
	return c.invoke(ctx, req, 0)
}

// InvokeTimeout is Invoke bounded also by timeout, without the context
// and timer a context.WithTimeout allocates per request (a pooled timer).
func (c *Conn) InvokeTimeout(ctx context.Context, req *Command, timeout time.Duration) (*Command, error) {
	return c.invoke(ctx, req, timeout)
}

var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func (c *Conn) invoke(ctx context.Context, req *Command, timeout time.Duration) (*Command, error) {
	if c.signer != nil {
		c.signer.sign(req)
	}
	return c.invokeUnsigned(ctx, req, timeout)
}

// invokeUnsigned is invoke without signing req.
func (c *Conn) invokeUnsigned(ctx context.Context, req *Command, timeout time.Duration) (*Command, error) {
	req.Opaque = c.nextOpaque.Add(1)
	req.Flag &^= FlagResponse | FlagOneway
	ch := make(chan *Command, 1)
	c.mu.Lock()
	if c.closing {
		err := c.closedErrLocked()
		c.mu.Unlock()
		return nil, err
	}
	c.pending[req.Opaque] = ch
	c.mu.Unlock()
	if err := c.enqueue(req); err != nil {
		c.dropPending(req.Opaque)
		return nil, err
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := timerPool.Get().(*time.Timer)
		t.Reset(timeout)
		defer func() {
			t.Stop()
			timerPool.Put(t)
		}()
		expired = t.C
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.closedErrLocked()
			c.mu.Unlock()
			return nil, err
		}
		return resp, nil
	case <-ctx.Done():
		c.dropPending(req.Opaque)
		return nil, fmt.Errorf("remoting: %s to %s (opaque %d): %w", protocol.RequestName(req.Code), c.remote, req.Opaque, ctx.Err())
	case <-expired:
		c.dropPending(req.Opaque)
		return nil, fmt.Errorf("remoting: %s to %s (opaque %d): no answer within %v: %w",
			protocol.RequestName(req.Code), c.remote, req.Opaque, timeout, context.DeadlineExceeded)
	}
}

func (c *Conn) dropPending(opaque int32) {
	c.mu.Lock()
	delete(c.pending, opaque)
	c.mu.Unlock()
}

// teardown runs once, on readLoop's way out.
func (c *Conn) teardown() {
	c.closeWith(ErrConnClosed)
	<-c.writerDone
	_ = c.nc.Close() // already closed unless writeLoop left it to be drained
	c.mu.Lock()
	pending := c.pending
	c.pending = map[int32]chan *Command{}
	callbacks := c.onClose
	c.onClose = nil
	c.tornDown = true
	c.mu.Unlock()
	for _, ch := range pending {
		close(ch)
	}
	if n := c.unanswered.Swap(0); n > 0 {
		c.ep.addBusy(-n)
	}
	for _, fn := range callbacks {
		fn()
	}
	if c.ep.connClosed != nil {
		c.ep.connClosed(c)
	}
	close(c.closed)
}
