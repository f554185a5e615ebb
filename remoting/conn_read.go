package remoting

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

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
