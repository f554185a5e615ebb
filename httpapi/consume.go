package httpapi

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Consume is leased consumption over HTTP (receive → ack / nack): the
// broker hands out messages under a lease with a receipt handle and an
// invisibility timeout.
type Consume interface {
	// Receive leases messages to group, waiting up to in.WaitMs while
	// there are none.
	Receive(group string, in protocol.HTTPReceive) ([]protocol.HTTPMessage, error)
	// Ack and Nack settle leases: how many, and the handles they could
	// not.
	Ack(group string, handles []string) (int, []broker.ReceiptFailure, error)
	Nack(group string, handles []string) (int, []broker.ReceiptFailure, error)
}

func receive(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in protocol.HTTPReceive
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	msgs, err := a.be.Consume.Receive(p.Get("group"), in)
	return writeResult(ctx, fasthttp.StatusOK, protocol.HTTPMessages{Messages: msgs}, err)
}

// ack ends leases: the messages are consumed.
func ack(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in protocol.HTTPReceiptHandles
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	done, failed, err := a.be.Consume.Ack(p.Get("group"), in.ReceiptHandles)
	return writeSettled(ctx, "acked", done, failed, err)
}

// nack sends the leased messages down the retry path.
func nack(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	if err := a.be.Messages.Writable(); err != nil {
		return err
	}
	var in protocol.HTTPReceiptHandles
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	done, failed, err := a.be.Consume.Nack(p.Get("group"), in.ReceiptHandles)
	return writeSettled(ctx, "nacked", done, failed, err)
}

// handleFailure is a receipt handle an ack or nack could not settle, with
// its problem.
type handleFailure struct {
	ReceiptHandle string           `json:"receipt_handle"`
	Error         protocol.Problem `json:"error"`
}

// writeSettled answers an ack or nack: {verb: n, "failed": [...]}.
func writeSettled(ctx *fasthttp.RequestCtx, verb string, done int, failed []broker.ReceiptFailure, err error) error {
	if err != nil {
		return err
	}
	out := make([]handleFailure, len(failed))
	for i, f := range failed {
		out[i] = handleFailure{ReceiptHandle: f.Handle, Error: problemOf(f.Err).Problem}
	}
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{verb: done, "failed": out})
	return nil
}

// readQueue reads a queue from ?offset=, at most ?max= messages, waiting
// up to ?wait_ms= while there are none; ?tag= filters by tag.
func readQueue(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	topic := p.Get("topic")
	q, err := a.be.Messages.Queue(topic, p.Get("queue"))
	if err != nil {
		return err
	}
	offset, err := httpjson.QueryIntIn(ctx, "offset", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	n, err := httpjson.QueryIntIn(ctx, "max", 32, 1, 1000)
	if err != nil {
		return err
	}
	waitMs, err := httpjson.QueryIntIn(ctx, "wait_ms", 0, 0, 1<<40)
	if err != nil {
		return err
	}
	read, err := a.be.Messages.ReadQueue(topic, q, offset, int(n), time.Duration(waitMs)*time.Millisecond,
		string(ctx.QueryArgs().Peek("tag")))
	return writeResult(ctx, fasthttp.StatusOK, read, err)
}
