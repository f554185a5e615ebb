package admin

import (
	"context"
	"net/url"
	"sort"

	"github.com/ferrymq/ferry/protocol"
)

// topicBrokerConfig is a broker's config of a topic from the HTTP API's
// form.
func topicBrokerConfig(t *protocol.HTTPTopic, b adminBroker) TopicBrokerConfig {
	perm, _ := ParsePerm(t.Perm)
	return TopicBrokerConfig{Broker: b.Name, Addr: b.Addr, ReadQueues: t.ReadQueues, WriteQueues: t.WriteQueues,
		Perm: protocol.PermString(perm), Order: t.Order}
}

func (a *httpAdmin) topics(ctx context.Context, system bool) ([]TopicInfo, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	var list []protocol.HTTPTopicDetail
	if err := a.do(ctx, "GET", "/v1/topics", nil, nil, &list); err != nil {
		return nil, err
	}
	out := make([]TopicInfo, 0, len(list))
	for _, t := range list {
		out = append(out, TopicInfo{Topic: t.Name, Brokers: []TopicBrokerConfig{topicBrokerConfig(&t.HTTPTopic, self)}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return adminFilterTopics(out, system), nil
}

func (a *httpAdmin) createTopic(ctx context.Context, spec TopicSpec, perm int32) ([]string, error) {
	self, err := a.selectBroker(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	p, err := adminHTTPPerm(perm)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPTopicInput{Name: spec.Topic, ReadQueues: &spec.ReadQueues, WriteQueues: &spec.WriteQueues, Perm: &p, Order: &spec.Order}
	if spec.DedupWindow > 0 {
		in.DedupWindow = adminHTTPDuration(&spec.DedupWindow)
	}
	if err := a.do(ctx, "POST", "/v1/topics", nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *httpAdmin) updateTopic(ctx context.Context, topic string, u TopicUpdate) ([]string, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPTopicInput{ReadQueues: u.ReadQueues, WriteQueues: u.WriteQueues, Order: u.Order, DedupWindow: adminHTTPDuration(u.DedupWindow)}
	if u.Perm != nil {
		bits, err := ParsePerm(*u.Perm)
		if err != nil {
			return nil, err
		}
		p, err := adminHTTPPerm(bits)
		if err != nil {
			return nil, err
		}
		in.Perm = &p
	}
	if err := a.do(ctx, "PUT", "/v1/topics/"+adminPathEscape(topic), nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *httpAdmin) deleteTopic(ctx context.Context, topic string) ([]string, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	// The broker wants a dead-letter topic's deletion confirmed: this call
	// is the confirmation (the CLI asks for --yes).
	path := "/v1/topics/" + adminPathEscape(topic)
	if protocol.IsDLQTopic(topic) {
		path += "?confirm=" + url.QueryEscape(topic)
	}
	if err := a.do(ctx, "DELETE", path, nil, nil, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

// httpTopic reads one topic's config and queues.
func (a *httpAdmin) topic(ctx context.Context, topic string) (protocol.HTTPTopicDetail, error) {
	var t protocol.HTTPTopicDetail
	err := a.do(ctx, "GET", "/v1/topics/"+adminPathEscape(topic), nil, nil, &t)
	return t, err
}

func (a *httpAdmin) describeTopic(ctx context.Context, topic string) (*TopicDescription, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return nil, err
	}
	t, err := a.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	d := &TopicDescription{Topic: topic, Brokers: []TopicBrokerConfig{topicBrokerConfig(&t.HTTPTopic, self)}, Queues: []TopicQueue{}}
	for _, q := range t.Queues {
		d.Queues = append(d.Queues, TopicQueue{Broker: self.Name, QueueID: q.QueueID, MinOffset: q.MinOffset, MaxOffset: q.MaxOffset,
			Messages: q.MaxOffset - q.MinOffset, LastStoreMS: q.LastStoreMs})
		d.Messages += q.MaxOffset - q.MinOffset
	}
	return d, nil
}

// --- groups ---
