package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/protocol"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// Errors of an idempotent producer (WithIdempotence).
var (
	// ErrProducerFenced: another instance started with the same producer
	// id; this one may not send any more.
	ErrProducerFenced = errors.New("client: producer fenced by a newer instance with the same id")
	// ErrOutOfOrderSequence: the broker expected another sequence on the
	// queue. The producer resynchronises before its next send there.
	ErrOutOfOrderSequence = errors.New("client: out of order sequence")
)

// WithIdempotence makes the producer idempotent under producerID, an id
// the application keeps across restarts: every send carries the id, an
// epoch and a per-queue sequence, and the broker stores each message once
// however often it is retried. On its first send to a broker group the
// producer asks for a new epoch (INIT_PRODUCER_ID), which fences any
// older instance with the same id, and continues each queue after the
// last sequence the broker stored.
//
// The broker keeps the sequences per broker group, so a send and its
// retries stay on the queue picked first (they never move to another
// group, which would not know the sequence), backing off from 50 ms to a
// second between attempts so that they outlast a broker restart. The
// group's replicas share that state, so after an error that may mean its
// master moved ("not master", a refused connection, no master routed) a
// retry reads the route again and goes to the group's new master with
// the same epoch and sequences. One request per queue is in
// flight at a time; use WithLinger or SendBatch for throughput. SendOneway
// and delayed messages are refused (the outcome of a one-way send is
// unknown, and the delay service stores a message again).
func WithIdempotence(producerID string) ProducerOpt {
	return ProducerOpt(func(c *config) {
		switch {
		case producerID == "" || len(producerID) > 255 || !protocol.ValidPropertyText(producerID):
			c.bad("producer id %q must be 1 to 255 bytes without \\x01 or \\x02", producerID)
		default:
			c.producerID = producerID
		}
	})
}

// idempotence is a producer's sequence state: one session per broker
// group (the epoch granted there) and one counter per queue.
type idempotence struct {
	id string
	tr *rmqProducer

	mu       sync.Mutex
	sessions map[string]*idemSession // by broker name; guarded by mu
	queues   map[MessageQueue]*idemQueue
}

// idemSession is the producer's epoch on one broker group.
type idemSession struct {
	mu    sync.Mutex
	epoch int32                  // 0 until the first INIT_PRODUCER_ID
	stale bool                   // a send's outcome is unknown: start a new epoch first
	seqs  map[MessageQueue]int64 // last stored sequence per queue, from the last init
}

// idemQueue serialises the sends to one queue; mu is held for a whole
// send with its retries.
type idemQueue struct {
	mu     sync.Mutex
	next   int64 // guarded by mu
	resync bool  // guarded by mu: take next from the broker after the next init
}

func newIdempotence(id string, tr *rmqProducer) *idempotence {
	return &idempotence{id: id, tr: tr, sessions: make(map[string]*idemSession), queues: make(map[MessageQueue]*idemQueue)}
}

func (ip *idempotence) session(broker string) *idemSession {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	s := ip.sessions[broker]
	if s == nil {
		s = &idemSession{}
		ip.sessions[broker] = s
	}
	return s
}

func (ip *idempotence) queue(mq MessageQueue) *idemQueue {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	q := ip.queues[mq]
	if q == nil {
		q = &idemQueue{resync: true}
		ip.queues[mq] = q
	}
	return q
}

// ensure returns the session's epoch, starting one (INIT_PRODUCER_ID) on
// first use or after a send with an unknown outcome.
func (ip *idempotence) ensure(ctx context.Context, s *idemSession, topic, broker string) (int32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch > 0 && !s.stale {
		return s.epoch, nil
	}
	addr, err := ip.tr.brokerAddr(ctx, topic, broker)
	if err != nil {
		return 0, err
	}
	resp, err := ip.tr.cmd.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": ip.id}, nil))
	if err != nil {
		return 0, err
	}
	if resp.Code != protocol.RespSuccess {
		return 0, brokerErr(addr, resp)
	}
	var body remoting.InitProducerIDResponse
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return 0, fmt.Errorf("client: INIT_PRODUCER_ID answer from %s: %w", addr, err)
	}
	s.epoch, s.stale = body.Epoch, false
	s.seqs = make(map[MessageQueue]int64, len(body.Queues))
	for _, q := range body.Queues {
		s.seqs[MessageQueue{Topic: q.Topic, BrokerName: broker, QueueID: int(q.QueueID)}] = q.LastSeq
	}
	return s.epoch, nil
}

// sendIdempotent sends msgs as one request to one queue, retrying there with the
// same sequences until it succeeds, fails for good or retries run out.
func (p *Producer) sendIdempotent(ctx context.Context, msgs []*outMsg, pick func([]MessageQueue) MessageQueue) ([]SendResult, error) {
	ip := p.idem
	topic := msgs[0].m.Topic
	for _, o := range msgs {
		if o.m.DelayLevel > 0 || !o.m.DeliverAt.IsZero() {
			return nil, fmt.Errorf("%w: an idempotent producer cannot send delayed messages", ErrInvalidMessage)
		}
	}
	qs, err := p.tr.queues(ctx, topic)
	if err != nil {
		return nil, err
	}
	mq := pick(qs)
	fixed := func([]MessageQueue) MessageQueue { return mq }
	q := ip.queue(mq)
	q.mu.Lock()
	defer q.mu.Unlock()
	s := ip.session(mq.BrokerName)
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
		res, err := p.attemptIdempotent(actx, ip, s, q, mq, msgs, fixed)
		cancel()
		if err == nil {
			q.next += int64(len(msgs))
			p.stats.messages.Add(int64(len(msgs)))
			return res, nil
		}
		moved := mayHaveMoved(err)
		final := attempt >= p.cfg.retries || !(retriable(err) || moved) || ctx.Err() != nil
		if final {
			p.stats.failures.Add(int64(len(msgs)))
			if !errors.Is(err, ErrProducerFenced) && !errors.Is(err, ErrInvalidMessage) {
				// The batch may or may not be stored: start a new epoch
				// (fencing this attempt if it is still on its way) and take
				// the queue's sequence from the broker.
				s.mu.Lock()
				s.stale = true
				s.mu.Unlock()
				q.resync = true
			}
			logAt(p.cfg.logger, LogWarn, "send failed", "topic", topic, "broker", mq.BrokerName, "attempts", attempt+1, "err", err)
			return nil, err
		}
		p.stats.retries.Add(1)
		logAt(p.cfg.logger, LogDebug, "send retried", "topic", topic, "broker", mq.BrokerName, "err", err)
		if moved {
			// The same queue of the same group, at the address the name
			// servers give now.
			ip.tr.routes.forget(topic)
		}
		// The retry must reach the same broker group: give a restarting
		// broker time to come back instead of spending every retry at once.
		t := time.NewTimer(retryBackoff(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// mayHaveMoved reports whether err may mean the broker group's master
// moved: a replica that is not (or no longer) master, an address nothing
// answers on any more, or a route without a master for the group for a
// moment. A lost answer or a reset connection says nothing of the kind.
func mayHaveMoved(err error) bool {
	var se *ServerError
	if errors.As(err, &se) {
		return se.Status == 0 && se.Code == protocol.RespServiceNotAvailable
	}
	var oe *net.OpError
	return errors.Is(err, ErrNoQueue) || errors.As(err, &oe) && oe.Op == "dial"
}

// retryBackoff is the pause before retry attempt+1 of an idempotent send:
// 50 ms doubling up to a second.
func retryBackoff(attempt int) time.Duration {
	return min(50*time.Millisecond<<min(attempt, 5), time.Second)
}

// attemptIdempotent sends msgs once with the queue's next sequences under
// the session's current epoch. An answer "fenced" for an epoch this
// producer itself has since replaced is repeated with the new epoch.
func (p *Producer) attemptIdempotent(ctx context.Context, ip *idempotence, s *idemSession, q *idemQueue, mq MessageQueue,
	msgs []*outMsg, fixed func([]MessageQueue) MessageQueue) ([]SendResult, error) {
	for {
		epoch, err := ip.ensure(ctx, s, mq.Topic, mq.BrokerName)
		if err != nil {
			return nil, err
		}
		if q.resync {
			s.mu.Lock()
			last, ok := s.seqs[mq]
			s.mu.Unlock()
			q.next, q.resync = 0, false
			if ok {
				q.next = last + 1
			}
		}
		out := make([]*outMsg, len(msgs))
		for i, o := range msgs {
			cp := *o
			cp.props = withProducerFields(o.props, ip.id, epoch, q.next+int64(i))
			out[i] = &cp
		}
		res, _, err := p.tr.send(ctx, mq.Topic, out, fixed, nil, false)
		var se *ServerError
		if errors.As(err, &se) {
			switch se.Code {
			case protocol.RespProducerFenced:
				// Fenced by this producer's own newer epoch (started after
				// another queue's send failed): send again under it.
				s.mu.Lock()
				newer := s.epoch > epoch
				s.mu.Unlock()
				if newer {
					continue
				}
				return nil, fmt.Errorf("%w: %w", ErrProducerFenced, err)
			case protocol.RespOutOfOrderSequence:
				return nil, fmt.Errorf("%w: %w", ErrOutOfOrderSequence, err)
			}
		}
		return res, err
	}
}

// withProducerFields returns props with the producer properties appended.
func withProducerFields(props []byte, id string, epoch int32, seq int64) []byte {
	out := make([]byte, 0, len(props)+len(id)+48)
	out = append(out, props...)
	out = protocol.AppendProperty(out, protocol.PropProducerID, id)
	out = protocol.AppendProperty(out, protocol.PropProducerEpoch, strconv.Itoa(int(epoch)))
	return protocol.AppendProperty(out, protocol.PropProducerSeq, strconv.FormatInt(seq, 10))
}
