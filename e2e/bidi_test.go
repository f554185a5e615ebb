package e2e

// A small WebDriver BiDi client (w3.org/TR/webdriver-bidi): JSON commands
// and events over one websocket, enough to drive Firefox, which speaks
// BiDi on --remote-debugging-port. Commands are {"id", "method",
// "params"}; answers carry the id with "type": "success" and "result", or
// "type": "error" with "error" and "message"; events have "type": "event",
// "method" and "params".

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

type bidiConn struct {
	conn net.Conn
	src  io.Reader // conn, after what arrived with the handshake

	wmu sync.Mutex // one whole frame written at a time

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan bidiMessage
	err     error // set once the connection is gone
	onEvent func(method string, params json.RawMessage)
	done    chan struct{}
}

type bidiMessage struct {
	ID      *int64          `json:"id"`
	Type    string          `json:"type"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// dialBiDi connects to a BiDi endpoint (ws://host:port/session); onEvent
// gets every event, on the reading goroutine.
func dialBiDi(ctx context.Context, url string, onEvent func(method string, params json.RawMessage)) (*bidiConn, error) {
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("bidi: dial %s: %w", url, err)
	}
	var src io.Reader = conn
	if br != nil { // frames that arrived with the handshake
		src = io.MultiReader(br, conn)
	}
	c := &bidiConn{conn: conn, src: bufio.NewReader(src), pending: map[int64]chan bidiMessage{}, onEvent: onEvent, done: make(chan struct{})}
	go c.read()
	return c, nil
}

// writeFrame writes one whole frame, built first so that frames of the
// reader (pongs, the close reply) and of callers never interleave.
func (c *bidiConn) writeFrame(build func(w io.Writer) error) error {
	var buf bytes.Buffer
	err := build(&buf)
	if buf.Len() > 0 {
		c.wmu.Lock()
		_, werr := c.conn.Write(buf.Bytes())
		c.wmu.Unlock()
		err = errors.Join(err, werr)
	}
	return err
}

// control answers a control frame (ping, close).
func (c *bidiConn) control(hdr ws.Header, r io.Reader) error {
	return c.writeFrame(func(w io.Writer) error { return wsutil.ControlFrameHandler(w, ws.StateClientSide)(hdr, r) })
}

// next reads the next text message.
func (c *bidiConn) next(rd *wsutil.Reader) ([]byte, error) {
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if hdr.OpCode.IsControl() {
			if err := c.control(hdr, rd); err != nil {
				return nil, err
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			if err := rd.Discard(); err != nil {
				return nil, err
			}
			continue
		}
		return io.ReadAll(rd)
	}
}

func (c *bidiConn) read() {
	defer close(c.done)
	rd := &wsutil.Reader{Source: c.src, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: c.control}
	for {
		data, err := c.next(rd)
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("bidi: connection closed: %w", err)
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m bidiMessage
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		if m.ID != nil {
			c.mu.Lock()
			ch := c.pending[*m.ID]
			delete(c.pending, *m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if m.Type == "event" && c.onEvent != nil {
			c.onEvent(m.Method, m.Params)
		}
	}
}

// call sends a command and decodes its result into out (nil: ignored).
func (c *bidiConn) call(ctx context.Context, method string, params any, out any) error {
	if params == nil {
		params = struct{}{}
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.nextID++
	id := c.nextID
	ch := make(chan bidiMessage, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	b, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	if err := c.writeFrame(func(w io.Writer) error { return wsutil.WriteClientText(w, b) }); err != nil {
		return fmt.Errorf("bidi: send %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.err
		}
		if m.Type == "error" {
			return fmt.Errorf("bidi: %s: %s: %s", method, m.Error, m.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("bidi: %s: %w", method, ctx.Err())
	}
}

// close ends the connection and waits for the reader.
func (c *bidiConn) close() error {
	_ = c.writeFrame(func(w io.Writer) error {
		return wsutil.WriteClientMessage(w, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	})
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
