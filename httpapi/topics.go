package httpapi

import (
	"fmt"
	"net/url"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Topics is the broker's topic administration: /v1/topics.
type Topics interface {
	List() []protocol.HTTPTopic
	// Get is a topic with its queues' offsets.
	Get(name string) (protocol.HTTPTopicDetail, error)
	// Create creates the topic in.Name; absent fields take the defaults.
	Create(in protocol.HTTPTopicInput) (protocol.HTTPTopic, error)
	// Update changes the fields in sets of topic name.
	Update(name string, in protocol.HTTPTopicInput) (protocol.HTTPTopic, error)
	Delete(name string) error
}

func listTopics(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Topics.List())
	return nil
}

func createTopic(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	var in protocol.HTTPTopicInput
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	t, err := a.be.Topics.Create(in)
	return writeResult(ctx, fasthttp.StatusCreated, t, err)
}

func getTopic(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	d, err := a.be.Topics.Get(p.Get("topic"))
	return writeResult(ctx, fasthttp.StatusOK, d, err)
}

func updateTopic(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	name := p.Get("topic")
	var in protocol.HTTPTopicInput
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return fmt.Errorf("%w: body names topic %q, the path %q (topics cannot be renamed)", protocol.ErrHTTPBadInput, in.Name, name)
	}
	t, err := a.be.Topics.Update(name, in)
	return writeResult(ctx, fasthttp.StatusOK, t, err)
}

// deleteTopic deletes a topic; a dead-letter topic only with
// ?confirm=<its name>, since its messages go with it.
func deleteTopic(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	name := p.Get("topic")
	if protocol.IsDLQTopic(name) && string(ctx.QueryArgs().Peek("confirm")) != name {
		return fmt.Errorf("%w: deleting %s deletes its dead letters: repeat with ?confirm=%s", protocol.ErrHTTPBadInput, name, url.QueryEscape(name))
	}
	if err := a.be.Topics.Delete(name); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}
