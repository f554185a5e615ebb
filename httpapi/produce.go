package httpapi

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Producing over HTTP: POST /v1/topics/{topic}/messages takes a JSON batch
// ({"messages": [...]}) or one raw body (application/octet-stream, its
// attributes in the query: tags, keys, queue_id, delay_level,
// deliver_at_ms), with an optional Idempotency-Key header; the broker
// stores it (Messages.Produce) and answers a result per message.

// produce stores one or many messages.
func produce(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	topic := p.Get("topic")
	resp, errs, err := a.be.Messages.Produce(func() (broker.ProduceRequest, error) { return readProduce(ctx, topic) })
	return writeProduced(ctx, resp, errs, err)
}

// writeProduced answers a produce: its results, each message refused
// alone with its problem.
func writeProduced(ctx *fasthttp.RequestCtx, resp protocol.HTTPProduceResponse, errs []error, err error) error {
	if err != nil {
		return err
	}
	for i, e := range errs {
		if e != nil {
			pr := problemOf(e)
			resp.Results[i].Error = &pr.Problem
		}
	}
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, resp)
	return nil
}

// readProduce reads a produce request.
func readProduce(ctx *fasthttp.RequestCtx, topic string) (broker.ProduceRequest, error) {
	req := broker.ProduceRequest{Topic: topic, IdempotencyKey: string(ctx.Request.Header.Peek("Idempotency-Key")),
		Born: remoteAddrPort(ctx.RemoteAddr())}
	ct := string(ctx.Request.Header.ContentType())
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch ct = strings.TrimSpace(strings.ToLower(ct)); {
	case ct == "application/octet-stream":
		m, err := produceFromQuery(ctx)
		if err != nil {
			return req, err
		}
		req.Messages, req.Raw = []protocol.HTTPProduceMessage{m}, ctx.PostBody()
		if req.Raw == nil {
			req.Raw = []byte{}
		}
	case ct == "" || ct == "application/json" || strings.HasSuffix(ct, "+json"):
		var in protocol.HTTPProduceRequest
		if err := httpjson.DecodeBody(ctx, &in); err != nil {
			return req, err
		}
		req.Messages = in.Messages
	default:
		return req, fmt.Errorf("%w: %q: send application/json or application/octet-stream", protocol.ErrHTTPUnsupportedMedia, ct)
	}
	return req, nil
}

// produceFromQuery reads a raw produce request's message attributes from
// its query parameters.
func produceFromQuery(ctx *fasthttp.RequestCtx) (protocol.HTTPProduceMessage, error) {
	var m protocol.HTTPProduceMessage
	args := ctx.QueryArgs()
	m.Tags = string(args.Peek("tags"))
	if k := string(args.Peek("keys")); k != "" {
		m.Keys = strings.Split(k, ",")
	}
	if args.Has("queue_id") {
		q, err := httpjson.QueryIntIn(ctx, "queue_id", 0, 0, 1<<31-1)
		if err != nil {
			return m, err
		}
		q32 := int32(q)
		m.QueueID = &q32
	}
	dl, err := httpjson.QueryIntIn(ctx, "delay_level", 0, 0, 1<<31-1)
	if err != nil {
		return m, err
	}
	m.DelayLevel = int32(dl)
	if m.DeliverAtMs, err = httpjson.QueryInt(ctx, "deliver_at_ms", 0); err != nil {
		return m, err
	}
	return m, nil
}

// remoteAddrPort is a client's address, an IPv4 one unmapped.
func remoteAddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
