package remoting

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
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

// enqueue encodes cmd's frame head and queues head and body for the
// writer. With no write in progress on a server connection over TCP, the
// calling goroutine writes the frame itself, as far as the socket takes it
// without waiting (see writeInline); otherwise writeLoop is rung.
func (c *Conn) enqueue(cmd *Command) error {
	hp := headPool.Get().(*[]byte)
	head, err := AppendFrameHead((*hp)[:0], cmd)
	if err != nil {
		putHead(hp)
		return err
	}
	*hp = head
	c.mu.Lock()
	if c.closing {
		err := c.closedErrLocked()
		c.mu.Unlock()
		putHead(hp)
		return err
	}
	c.wq = append(c.wq, head)
	if len(cmd.Body) > 0 {
		c.wq = append(c.wq, cmd.Body)
	}
	c.wheads = append(c.wheads, hp)
	if c.writing {
		// The writer takes it with the frames before it.
		c.mu.Unlock()
		return nil
	}
	if c.raw != nil && c.corked.Load() == 0 {
		c.writing = true
		c.mu.Unlock()
		c.writeInline()
		return nil
	}
	c.mu.Unlock()
	c.ringWriter()
	return nil
}

func (c *Conn) ringWriter() {
	select {
	case c.doorbell <- struct{}{}:
	default:
	}
}

// takeLocked moves the queued frames behind those being written.
func (c *Conn) takeLocked() {
	c.out = append(c.out, c.wq...)
	c.outHeads = append(c.outHeads, c.wheads...)
	clear(c.wq)
	c.wq = c.wq[:0]
	clear(c.wheads)
	c.wheads = c.wheads[:0]
}

// wrote drops n written bytes from the front of out.
func (c *Conn) wrote(n int) {
	k := 0
	for k < len(c.out) && n >= len(c.out[k]) {
		n -= len(c.out[k])
		k++
	}
	if k < len(c.out) && n > 0 {
		c.out[k] = c.out[k][n:]
	}
	m := copy(c.out, c.out[k:])
	clear(c.out[m:])
	c.out = c.out[:m]
}

// written gives back the heads of out, all of it written.
func (c *Conn) written() {
	clear(c.out)
	c.out = c.out[:0]
	for _, hp := range c.outHeads {
		putHead(hp)
	}
	clear(c.outHeads)
	c.outHeads = c.outHeads[:0]
}

// inlineRounds bounds the writes one goroutine makes in writeInline for
// frames others queued meanwhile before it leaves them to writeLoop.
const inlineRounds = 2

// writeInline writes the queued frames on the calling goroutine (which
// set writing), as far as the socket takes them now: an answer is written
// by the goroutine that has it, with no hand-off to writeLoop, which at
// low rates is a thread wake-up per answer. It never waits for the socket:
// what does not fit now (a full socket buffer, a peer not reading), a
// write deadline passed, a failed write, the connection closing or more
// than inlineRounds rounds of frames are handed to writeLoop, which
// writes them in order, under the write timeout, and deals with errors.
func (c *Conn) writeInline() {
	for round := 0; ; round++ {
		c.mu.Lock()
		c.takeLocked()
		if len(c.out) == 0 {
			c.writing = false
			closing := c.closing
			c.mu.Unlock()
			if closing {
				c.ringWriter() // writeLoop may wait to flush and close
			}
			return
		}
		if round == inlineRounds || c.closing {
			c.handoff = true
			c.mu.Unlock()
			c.ringWriter()
			return
		}
		c.mu.Unlock()
		for len(c.out) > 0 {
			n, iov, err := writeNow(c.raw, c.out, c.iov)
			c.iov = iov
			if err != nil {
				c.mu.Lock()
				c.handoff = true
				c.mu.Unlock()
				c.ringWriter()
				return
			}
			c.wrote(n)
		}
		c.written()
	}
}

// writeLoop writes what enqueue leaves to it, a batch at a time with one
// writev per batch, and what writeInline hands over. On Close it flushes
// what is queued, then closes the socket.
func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	drain := false // a write failed: leave the socket to readLoop to drain
	// armed is the write deadline in force. It is moved only when less
	// than half the write timeout is left of it: a write still gets at
	// least half the timeout, and a busy connection does not reset a
	// runtime timer for every write.
	var armed time.Time
	final := false
	for {
		if !final {
			select {
			case <-c.doorbell:
				// Let goroutines that are about to answer or send run first,
				// so one write carries their frames too: under load this turns
				// a write per frame into a write per few dozen; idle, nothing
				// else is runnable and it returns at once.
				runtime.Gosched()
			case <-c.done:
				final = true
			}
		}
		c.mu.Lock()
		if c.writing && !c.handoff {
			// A goroutine is writing inline; it writes what is queued or
			// hands it over (and rings), also when the connection closes.
			c.mu.Unlock()
			if final {
				<-c.doorbell
			}
			continue
		}
		c.writing, c.handoff = true, false
		for {
			c.takeLocked()
			if len(c.out) == 0 {
				break
			}
			c.mu.Unlock()
			timeout := c.ep.writeTimeout
			if final {
				timeout = closeFlushTimeout
			}
			if now := time.Now(); final || armed.Sub(now) < timeout/2 {
				armed = now.Add(timeout)
				_ = c.nc.SetWriteDeadline(armed)
			}
			bufs := c.out // WriteTo consumes its receiver; keep out's backing array
			if _, err := bufs.WriteTo(c.nc); err != nil && !final {
				c.log.Debug("remoting: write failed, closing connection", "error", err)
				c.closeWith(fmt.Errorf("write: %w", err))
				// The peer is gone, but requests it sent before going may
				// still sit unread in the socket (a client that sends its
				// last offset commits and closes at once): let readLoop read
				// and serve them, for a bounded time, before the socket is
				// closed by teardown.
				_ = c.nc.SetReadDeadline(time.Now().Add(closeFlushTimeout))
				final, drain = true, true
			}
			c.written()
			c.mu.Lock()
		}
		c.writing = false
		c.mu.Unlock()
		if final {
			if !drain {
				_ = c.nc.Close()
			}
			return
		}
	}
}

// readLoop reads frames until the connection fails or closes, then tears
// the connection down.
func (c *Conn) readLoop() {
	defer c.teardown()
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	// group collects requests the handler serves together (see Batcher)
	// while more frames are already buffered; it is dispatched before the
	// loop would wait for the socket.
	var group []*Command
	limit := min(maxGroup, c.ep.maxInflight)
	flush := func() bool {
		if len(group) == 0 {
			return true
		}
		ok := c.dispatchGroup(group)
		group = nil // the job owns it
		return ok
	}
	for {
		if len(group) >= limit || len(group) > 0 && !frameBuffered(br) {
			if !flush() {
				return
			}
		}
		var p []byte
		err := c.awaitFrame(br)
		if err == nil {
			p, err = ReadFrame(br, c.ep.maxFrame)
		}
		if err != nil {
			flush() // requests already read are served
			c.readFailed(c.timeoutCause(err))
			return
		}
		cmd, err := decodePayload(p, c.ep.wireResponses)
		if err != nil {
			// Without a decoded header there is no opaque to answer to;
			// close the connection as the Java decoder does.
			flush()
			c.log.Warn("remoting: undecodable frame, closing connection", "error", err)
			c.closeWith(err)
			return
		}
		if cmd.IsResponse() {
			c.deliver(cmd)
			continue
		}
		if c.ep.batcher != nil && !cmd.IsOneway() && c.ep.batcher.Batchable(cmd) {
			group = append(group, cmd)
			continue
		}
		if !flush() || !c.dispatch(cmd) {
			return
		}
	}
}

// awaitFrame arms the read deadline for the next frame on a server
// connection: the idle timeout while nothing of it has arrived (renewed as
// long as a request of the connection is being served: a held pull is not
// idleness), then the read timeout for the whole frame. A frame already
// buffered whole needs neither, nor one that arrives whole with its first
// byte (the read timeout is armed only for a frame still incomplete).
//
// Moving a socket deadline resets a runtime timer, so the idle deadline is
// moved only when less than half the idle timeout is left of it; a wait
// that times out before a whole idle timeout passed since it began (the
// deadline was armed earlier) waits again.
func (c *Conn) awaitFrame(br *bufio.Reader) error {
	idle, read := c.ep.idleTimeout, c.ep.readTimeout
	if idle <= 0 && read <= 0 || frameBuffered(br) || c.isClosing() {
		return nil
	}
	if br.Buffered() == 0 {
		began := time.Now()
		for {
			now := time.Now()
			switch {
			case idle > 0 && (c.rdFrame || c.rdl.Sub(now) < idle/2):
				c.rdl, c.rdFrame = now.Add(idle), false
				_ = c.nc.SetReadDeadline(c.rdl)
			case idle <= 0 && c.rdFrame:
				c.rdl, c.rdFrame = time.Time{}, false
				_ = c.nc.SetReadDeadline(c.rdl)
			}
			_, err := br.Peek(1)
			if err == nil {
				break
			}
			if !isTimeout(err) {
				return err
			}
			c.rdl = time.Time{}      // passed: the next round arms a fresh one
			closing := c.isClosing() // then the deadline is the writer's, to drain the socket
			if !closing && time.Since(began) < idle {
				continue
			}
			if c.unanswered.Load() == 0 || closing {
				return fmt.Errorf("%w: nothing received for %v", ErrIdleTimeout, idle)
			}
			began = time.Now()
		}
		if frameBuffered(br) {
			return nil
		}
	}
	if read > 0 {
		c.rdl, c.rdFrame = time.Now().Add(read), true
	} else {
		// Only the idle deadline is in use: no bound on the frame.
		c.rdl, c.rdFrame = time.Time{}, true
	}
	_ = c.nc.SetReadDeadline(c.rdl)
	return nil
}

// timeoutCause names a read deadline that expired in the middle of a frame.
func (c *Conn) timeoutCause(err error) error {
	if !isTimeout(err) || errors.Is(err, ErrIdleTimeout) || c.ep.readTimeout <= 0 || c.isClosing() {
		return err
	}
	return fmt.Errorf("%w: a frame took longer than %v", ErrReadTimeout, c.ep.readTimeout)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Conn) isClosing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// maxGroup bounds the requests served together (so does the connection's
// in-flight limit: each holds a slot).
const maxGroup = 64

// frameBuffered reports whether a whole frame waits in br, so that reading
// it does not block.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < 4 {
		return false
	}
	b, err := br.Peek(4)
	if err != nil {
		return false
	}
	return int64(br.Buffered()-4) >= int64(binary.BigEndian.Uint32(b))
}

// dispatchGroup hands requests read together to one handler goroutine,
// which serves them with the Batcher; a group of one goes the usual way.
// Each request holds an in-flight slot as in dispatch.
func (c *Conn) dispatchGroup(reqs []*Command) bool {
	if len(reqs) == 1 {
		return c.dispatch(reqs[0])
	}
	if c.ep.draining.Load() {
		for _, req := range reqs {
			_ = c.enqueue(NewResponse(req, protocol.RespServiceNotAvailable, "remoting: server is shutting down"))
		}
		return true
	}
	for i := range reqs {
		// As in dispatch: a free slot is taken even if the connection is
		// closing.
		select {
		case c.slots <- struct{}{}:
			continue
		default:
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.done:
			for range i {
				<-c.slots
			}
			return false
		}
	}
	n := int64(len(reqs))
	c.ep.addBusy(2 * n)
	c.unanswered.Add(n)
	c.ep.pool.submit(func() { c.serveGroup(reqs) })
	return true
}

func (c *Conn) serveGroup(reqs []*Command) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("remoting: handler panicked", "panic", r, "code", protocol.RequestName(reqs[0].Code))
			// Requests already answered get a second answer the client
			// drops (no request waits on its opaque any more).
			for _, req := range reqs {
				_ = c.Reply(NewResponse(req, protocol.RespSystemError, fmt.Sprintf("remoting: handler panicked: %v", r)))
			}
		}
		for range reqs {
			<-c.slots
		}
		c.ep.addBusy(-int64(len(reqs)))
	}()
	c.corked.Add(1)
	defer c.corked.Add(-1)
	c.ep.batcher.ServeBatch(c, reqs)
}

func (c *Conn) readFailed(err error) {
	select {
	case <-c.done: // closed locally; the read error is a consequence
		return
	default:
	}
	if errors.Is(err, io.EOF) {
		c.closeWith(io.EOF)
		return
	}
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame):
		c.log.Warn("remoting: bad frame, closing connection", "error", err)
	case errors.As(err, &rh):
		c.log.Warn("remoting: not a TLS client (plain text on a TLS port?), closing connection", "error", err)
	case strings.Contains(err.Error(), "tls: "):
		c.log.Warn("remoting: TLS handshake failed, closing connection", "error", err)
	case errors.Is(err, ErrReadTimeout):
		if n, ok := c.ep.slowLog.allow(); ok {
			c.log.Warn("remoting: client too slow, closing connection", "error", err, "cut_off_not_logged", n)
		}
	case errors.Is(err, ErrIdleTimeout):
		c.log.Debug("remoting: idle connection closed", "error", err)
	default:
		c.log.Debug("remoting: read failed, closing connection", "error", err)
	}
	c.closeWith(err)
}

// deliver hands a response to the Invoke waiting for its opaque.
func (c *Conn) deliver(resp *Command) {
	c.mu.Lock()
	ch := c.pending[resp.Opaque]
	delete(c.pending, resp.Opaque)
	c.mu.Unlock()
	if ch == nil {
		c.log.Debug("remoting: response for no waiting request, dropped", "opaque", resp.Opaque, "code", resp.Code)
		return
	}
	ch <- resp
}

// dispatch runs the handler for req on its own goroutine once an in-flight
// slot is free, or right here on the read goroutine if the handler says
// req is served without blocking (see Inliner). It returns false if the
// connection closed while waiting.
func (c *Conn) dispatch(req *Command) bool {
	if c.ep.draining.Load() {
		if !req.IsOneway() {
			// enqueue, not Reply: this request was never counted as unanswered.
			_ = c.enqueue(NewResponse(req, protocol.RespServiceNotAvailable, "remoting: server is shutting down"))
		}
		return true
	}
	// A request already read is served even if the connection is closing:
	// only a full set of in-flight slots makes it wait for the close.
	select {
	case c.slots <- struct{}{}:
	default:
		select {
		case c.slots <- struct{}{}:
		case <-c.done:
			return false
		}
	}
	c.ep.addBusy(1)
	if !req.IsOneway() {
		c.unanswered.Add(1)
		c.ep.addBusy(1)
	}
	if c.ep.inliner != nil && c.ep.inliner.Inlinable(req) {
		c.serve(req)
		return true
	}
	c.ep.pool.submit(func() { c.serve(req) })
	return true
}

func (c *Conn) serve(req *Command) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("remoting: handler panicked", "panic", r, "code", protocol.RequestName(req.Code))
			_ = c.Reply(NewResponse(req, protocol.RespSystemError, fmt.Sprintf("remoting: handler panicked: %v", r)))
		}
		<-c.slots
		c.ep.addBusy(-1)
	}()
	c.ep.handler.ServeRemoting(c, req)
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
