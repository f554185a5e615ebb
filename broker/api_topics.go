package broker

import (
	"fmt"
	"net/url"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// apiTopic is a topic's config as the HTTP API shows it.
type apiTopic = protocol.HTTPTopic

// apiTopicDetail adds the queues' offsets.
type apiTopicDetail = protocol.HTTPTopicDetail

// apiTopicInput is the body of POST /v1/topics and PUT /v1/topics/{topic}.
// Absent fields keep their current (or default) value.
type apiTopicInput = protocol.HTTPTopicInput

func topicOut(tc TopicConfig) apiTopic {
	return apiTopic{Name: tc.TopicName, ReadQueues: tc.ReadQueueNums, WriteQueues: tc.WriteQueueNums,
		Perm: protocol.HTTPPermText(tc.Perm), Order: tc.Order}
}

// parsePerm turns "rw", "r", "w" into perm bits, keeping the other bits of
// old (inherit, priority).
func parsePerm(s string, old int32) (int32, error) {
	base := old &^ (protocol.PermRead | protocol.PermWrite)
	switch s {
	case "rw", "wr":
		return base | protocol.PermRead | protocol.PermWrite, nil
	case "r":
		return base | protocol.PermRead, nil
	case "w":
		return base | protocol.PermWrite, nil
	}
	return 0, fmt.Errorf("%w: perm %q: want rw, r or w", errBadInput, s)
}

// applyTopicInput merges the input into tc.
func applyTopicInput(in *apiTopicInput, tc *TopicConfig) error {
	if in.ReadQueues != nil {
		tc.ReadQueueNums = *in.ReadQueues
	}
	if in.WriteQueues != nil {
		tc.WriteQueueNums = *in.WriteQueues
	}
	if in.Perm != nil {
		p, err := parsePerm(*in.Perm, tc.Perm)
		if err != nil {
			return err
		}
		tc.Perm = p
	}
	if in.Order != nil {
		tc.Order = *in.Order
	}
	return nil
}

func (b *Broker) apiListTopics(ctx *fasthttp.RequestCtx, _ apiParams) {
	out := []apiTopic{}
	for _, name := range b.topics.names() {
		if tc, ok := b.topics.get(name); ok {
			out = append(out, topicOut(tc))
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

func (b *Broker) apiCreateTopic(ctx *fasthttp.RequestCtx, _ apiParams) {
	var in apiTopicInput
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if err := ValidateTopic(in.Name); err != nil {
		writeProblem(ctx, err)
		return
	}
	if err := b.checkTopicAdmin(in.Name, false); err != nil {
		writeProblem(ctx, err)
		return
	}
	if _, ok := b.topics.get(in.Name); ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", errTopicExists, in.Name))
		return
	}
	n := b.c().DefaultTopicQueueNums
	tc := TopicConfig{TopicName: in.Name, ReadQueueNums: n, WriteQueueNums: n,
		Perm: protocol.PermRead | protocol.PermWrite, TopicFilterType: remoting.TopicFilterSingleTag}
	if err := applyTopicInput(&in, &tc); err != nil {
		writeProblem(ctx, err)
		return
	}
	if err := b.CreateTopic(tc); err != nil {
		writeProblem(ctx, err)
		return
	}
	b.log.Info().Str("topic", tc.TopicName).Int32("queues", tc.WriteQueueNums).Msg("topic created over HTTP")
	cur, _ := b.topics.get(tc.TopicName)
	writeJSON(ctx, fasthttp.StatusCreated, topicOut(cur))
}

func (b *Broker) apiGetTopic(ctx *fasthttp.RequestCtx, p apiParams) {
	name := p.get("topic")
	tc, ok := b.topics.get(name)
	if !ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, name))
		return
	}
	st, err := b.TopicStats(name)
	if err != nil {
		writeProblem(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, apiTopicDetail{HTTPTopic: topicOut(tc), Queues: st})
}

func (b *Broker) apiUpdateTopic(ctx *fasthttp.RequestCtx, p apiParams) {
	name := p.get("topic")
	var in apiTopicInput
	if err := decodeBody(ctx, &in); err != nil {
		writeProblem(ctx, err)
		return
	}
	if in.Name != "" && in.Name != name {
		writeProblem(ctx, fmt.Errorf("%w: body names topic %q, the path %q (topics cannot be renamed)", errBadInput, in.Name, name))
		return
	}
	tc, ok := b.topics.get(name)
	if !ok {
		writeProblem(ctx, fmt.Errorf("%w: %s", ErrTopicNotFound, name))
		return
	}
	if err := applyTopicInput(&in, &tc); err != nil {
		writeProblem(ctx, err)
		return
	}
	if err := b.CreateTopic(tc); err != nil {
		writeProblem(ctx, err)
		return
	}
	cur, _ := b.topics.get(name)
	writeJSON(ctx, fasthttp.StatusOK, topicOut(cur))
}

func (b *Broker) apiDeleteTopic(ctx *fasthttp.RequestCtx, p apiParams) {
	name := p.get("topic")
	if protocol.IsDLQTopic(name) && string(ctx.QueryArgs().Peek("confirm")) != name {
		writeProblem(ctx, fmt.Errorf("%w: deleting %s deletes its dead letters: repeat with ?confirm=%s", errBadInput, name, url.QueryEscape(name)))
		return
	}
	if err := b.DeleteTopic(name); err != nil {
		writeProblem(ctx, err)
		return
	}
	b.api.leases.forgetTopic(name)
	b.log.Info().Str("topic", name).Msg("topic deleted over HTTP")
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
