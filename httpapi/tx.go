package httpapi

import (
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Tx is the broker's HTTP transactions: a client that cannot answer
// check-backs begins a transaction on a topic, sends messages into it and
// commits or aborts it.
//
//	POST /v1/topics/{topic}/transactions                 {"timeout": "60s"} → 201 {"id", ...}
//	POST /v1/topics/{topic}/transactions/{id}/messages   the body of POST /v1/topics/{topic}/messages
//	POST /v1/topics/{topic}/transactions/{id}/commit     → {"state": "committed", "messages": n}
//	POST /v1/topics/{topic}/transactions/{id}/abort      → {"state": "aborted", "messages": n}
type Tx interface {
	// Begin begins a transaction; timeout is a duration, "" for the
	// default.
	Begin(topic, timeout string) (broker.HTTPTxInfo, error)
	// Send stores messages into a transaction as Messages.Produce does.
	Send(topic, id string, read func() (broker.ProduceRequest, error)) (protocol.HTTPProduceResponse, []error, error)
	// End commits (commit) or aborts a transaction.
	End(topic, id string, commit bool) (broker.HTTPTxInfo, error)
}

func txBegin(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	if err := a.be.Messages.Writable(); err != nil {
		return err
	}
	var in struct {
		Timeout string `json:"timeout"`
	}
	if len(ctx.PostBody()) > 0 {
		if err := httpjson.DecodeBody(ctx, &in); err != nil {
			return err
		}
	}
	info, err := a.be.Tx.Begin(p.Get("topic"), in.Timeout)
	return writeResult(ctx, fasthttp.StatusCreated, info, err)
}

func txSend(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	topic := p.Get("topic")
	resp, errs, err := a.be.Tx.Send(topic, p.Get("id"), func() (broker.ProduceRequest, error) { return readProduce(ctx, topic) })
	return writeProduced(ctx, resp, errs, err)
}

func txCommit(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	info, err := a.be.Tx.End(p.Get("topic"), p.Get("id"), true)
	return writeResult(ctx, fasthttp.StatusOK, info, err)
}

func txAbort(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	info, err := a.be.Tx.End(p.Get("topic"), p.Get("id"), false)
	return writeResult(ctx, fasthttp.StatusOK, info, err)
}
