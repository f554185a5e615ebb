package broker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
)

// PutDue stores scheduled messages that became due on their real topic
// (delay.Putter). A message whose topic no longer exists is dropped with a
// log line unless it is a group topic or auto-creation is on.
func (b *Broker) PutDue(msgs []commitlog.Message) error {
	keep := msgs[:0]
	for _, m := range msgs {
		if _, ok := b.topics.get(m.Topic); !ok {
			var err error
			switch {
			case isRetryOrDLQ(m.Topic):
				_, err = b.sender.ensureGroupTopic(m.Topic)
			case b.c().AutoCreateTopic:
				h := sendHeader{topic: m.Topic, queueID: m.QueueID}
				_, err = b.sender.resolveSendTopic(&h)
			default:
				err = fmt.Errorf("%w: %s", ErrTopicNotFound, m.Topic)
			}
			if err != nil {
				b.log.Warn().Err(err).Str("topic", m.Topic).Msg("dropping a due scheduled message")
				continue
			}
		}
		keep = append(keep, m)
	}
	if len(keep) == 0 {
		return nil
	}
	res, err := b.clog.Append(keep, nil)
	if err != nil && !errors.Is(err, commitlog.ErrFlushTimeout) {
		return err
	}
	_ = res
	now := time.Now()
	for i := range keep {
		b.metrics.messagesIn(keep[i].Topic, 1, len(keep[i].Body))
		if g, ok := strings.CutPrefix(keep[i].Topic, protocol.RetryTopicPrefix); ok && b.retryReaders.shouldTell(g, now) {
			// Its consumers may not read the retry queue yet (retryreaders.go).
			b.client.notifyGroupChanged(g)
		}
	}
	return nil
}

// openDelay builds the delay-level and timer deliverers. A standalone
// broker starts them at once; a replica only while it is its group's
// master (replication.go: startMasterWork, stopMasterWork).
func (b *Broker) openDelay() error {
	svc, err := delay.New(delay.Config{
		Levels: b.delays, ScheduleTopic: protocol.ScheduleTopic, TimerTopic: protocol.TimerTopic, DB: b.meta.db,
		Queues: b.cq, Log: b.clog, Put: b, Logger: b.log,
		// Progress travels in the log with the other metadata (metalog.go).
		Progress: func(p delay.Progress) error {
			return b.metaLog.write([]metaChange{{Kind: metaDelayProgres, Delay: p}}, false)
		},
	}, b.timerIdx)
	if err != nil {
		return err
	}
	b.delaySvc = svc
	b.holds.schedule.Store(svc)
	return nil
}
