package client

import (
	"hash/fnv"
	"sync/atomic"
)

// QueueSelector picks the queue a message goes to. queues is never empty,
// is sorted by broker name and queue id, and on a retry holds only the
// queues of brokers that have not failed this send yet. Select must be safe
// for concurrent use.
type QueueSelector interface {
	Select(m *Message, queues []MessageQueue) MessageQueue
}

// SelectorFunc adapts a function to QueueSelector.
type SelectorFunc func(m *Message, queues []MessageQueue) MessageQueue

// Select calls f.
func (f SelectorFunc) Select(m *Message, queues []MessageQueue) MessageQueue { return f(m, queues) }

type roundRobin struct{ n atomic.Uint64 }

// RoundRobin spreads messages over all queues in turn (the default). With
// automatic batching it picks one queue per batch instead of per message.
func RoundRobin() QueueSelector { return &roundRobin{} }

func (r *roundRobin) Select(_ *Message, queues []MessageQueue) MessageQueue {
	return queues[int(r.n.Add(1)%uint64(len(queues)))]
}

type hashSelector struct{ rr roundRobin }

// HashSelector sends messages with the same ShardingKey to the same queue
// (FNV-1a of the key modulo the queue count), which keeps them in order as
// long as the topic's queue count does not change. Messages without a key
// go round robin. A retry on another broker maps the key over the
// remaining queues, so use WithRetries(0) where order matters more than
// availability.
func HashSelector() QueueSelector { return &hashSelector{} }

func (h *hashSelector) Select(m *Message, queues []MessageQueue) MessageQueue {
	if m.ShardingKey == "" {
		return h.rr.Select(m, queues)
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(m.ShardingKey))
	return queues[int(f.Sum32()%uint32(len(queues)))]
}
