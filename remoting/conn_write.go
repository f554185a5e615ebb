package remoting

import (
	"fmt"
	"runtime"
	"time"
)

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
