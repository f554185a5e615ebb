package httpapi

import (
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Messages is the broker's message lookups: by id, by key or time, the
// trace of a message, and its resending.
type Messages interface {
	ByID(id string) (protocol.HTTPMessage, error)
	// Find is up to n messages of topic stored between begin and end
	// (ms; end 0: no end), with key unless key is "".
	Find(topic, key string, begin, end int64, n int) ([]protocol.HTTPMessage, error)
	Trace(id string) (protocol.HTTPTrace, error)
	// Resend stores a copy of a message again: into group's retry topic,
	// or into its original topic when group is "".
	Resend(id, group string) (map[string]any, error)
	// Writable is nil when the broker takes sends, else why not.
	Writable() error
	// Produce stores the messages of the request read reads (produce.go).
	Produce(read func() (broker.ProduceRequest, error)) (protocol.HTTPProduceResponse, []error, error)
	// Queue checks that a topic may be read and names its queue.
	Queue(topic, queue string) (int32, error)
	// ReadQueue reads a queue from offset, waiting up to wait while
	// there is nothing to read (consume.go).
	ReadQueue(topic string, q int32, offset int64, n int, wait time.Duration, tag string) (protocol.HTTPQueueRead, error)
}

func messageByID(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	m, err := a.be.Messages.ByID(p.Get("msgId"))
	return writeResult(ctx, fasthttp.StatusOK, m, err)
}

// findMessages looks a topic's messages up by key (?key=) or by time
// (?begin_ms=&end_ms=), at most ?max=.
func findMessages(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	if _, err := a.be.Topics.Get(p.Get("topic")); err != nil {
		return err // an unknown topic before a bad query
	}
	key := string(ctx.QueryArgs().Peek("key"))
	if key == "" && !ctx.QueryArgs().Has("begin_ms") {
		return fmt.Errorf("%w: query parameter key or begin_ms is required", protocol.ErrHTTPBadInput)
	}
	begin, err := httpjson.QueryInt(ctx, "begin_ms", 0)
	if err != nil {
		return err
	}
	end, err := httpjson.QueryInt(ctx, "end_ms", 0)
	if err != nil {
		return err
	}
	n, err := httpjson.QueryIntIn(ctx, "max", 32, 1, 1000)
	if err != nil {
		return err
	}
	msgs, err := a.be.Messages.Find(p.Get("topic"), key, begin, end, int(n))
	return writeResult(ctx, fasthttp.StatusOK, protocol.HTTPMessages{Messages: msgs}, err)
}

func traceMessage(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	t, err := a.be.Messages.Trace(p.Get("msgId"))
	return writeResult(ctx, fasthttp.StatusOK, t, err)
}

// resendMessage stores a copy of a message again: into a group's retry
// topic ({"group": G}: only that group receives it) or into its original
// topic ({} or no body: every subscribed group does).
func resendMessage(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in struct {
		Group string `json:"group"`
	}
	if len(ctx.PostBody()) > 0 {
		if err := httpjson.DecodeBody(ctx, &in); err != nil {
			return err
		}
	}
	res, err := a.be.Messages.Resend(p.Get("msgId"), in.Group)
	return writeResult(ctx, fasthttp.StatusOK, res, err)
}
