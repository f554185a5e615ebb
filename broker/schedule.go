package broker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/dlq"
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

// DLQList lists up to max dead letters of group from queue offset from.
func (b *Broker) DLQList(group string, from int64, max int) ([]dlq.DeadLetter, int64, error) {
	if _, ok := b.topics.get(protocol.DLQTopic(group)); !ok {
		return nil, 0, nil
	}
	dls, next, err := dlq.List(b.cq, b.clog, group, from, max)
	if err == nil {
		err = b.withResent(group, dls)
	}
	return dls, next, err
}

// DLQResend resends the dead letters of group at the given DLQ queue
// offsets (all of them when offsets is nil) and returns how many went and
// how many were skipped as resent already (each is resent once: see
// dlqresent.go).
func (b *Broker) DLQResend(group string, offsets []int64, target dlq.Target) (sent, skipped int, err error) {
	topic := protocol.DLQTopic(group)
	if _, ok := b.topics.get(topic); !ok {
		return 0, 0, fmt.Errorf("%w: group %s has no dead letters", ErrTopicNotFound, group)
	}
	if offsets == nil {
		lo := b.reader.minOffset(topic, 0)
		for o := lo; o < b.cq.MaxOffset(topic, 0); o++ {
			offsets = append(offsets, o)
		}
	}
	var batch []commitlog.Message
	var batchOffs []int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := b.clog.Append(batch, nil); err != nil && !errors.Is(err, commitlog.ErrFlushTimeout) {
			return err
		}
		if err := b.meta.markResent(group, batchOffs, resentRecord{AtMillis: time.Now().UnixMilli(), Target: target.String()}); err != nil {
			return fmt.Errorf("broker: %d dead letters resent but not recorded: %w", len(batch), err)
		}
		sent += len(batch)
		batch, batchOffs = batch[:0], batchOffs[:0]
		return nil
	}
	var buf []byte
	seen := make(map[int64]bool, len(offsets))
	for _, qo := range offsets {
		if seen[qo] {
			continue
		}
		seen[qo] = true
		if _, done, err := b.meta.resent(group, qo); err != nil {
			return sent, skipped, err
		} else if done {
			skipped++
			continue
		}
		es, err := b.cq.Get(topic, 0, qo, 1, nil)
		if err != nil || len(es) == 0 || es[0].Size == 0 {
			return sent, skipped, fmt.Errorf("%w: no dead letter at offset %d of %s", ErrInvalidRequest, qo, topic)
		}
		var rec protocol.Record
		rec, buf, err = b.clog.ReadRecord(es[0].Offset, buf)
		if err != nil {
			return sent, skipped, err
		}
		dest := dlq.OriginalTopic(rec)
		var queue int32
		if target == dlq.ToOriginalTopic {
			tc, ok := b.topics.get(dest)
			if !ok || strings.HasPrefix(dest, protocol.DLQTopicPrefix) {
				return sent, skipped, fmt.Errorf("%w: original topic %s of dead letter %d does not exist", ErrTopicNotFound, dest, qo)
			}
			if !protocol.PermWritable(tc.Perm) {
				return sent, skipped, fmt.Errorf("%w: topic %s is not writable", ErrNoPermission, dest)
			}
			queue = rand.Int32N(tc.WriteQueueNums)
		} else if _, err := b.sender.ensureGroupTopic(protocol.RetryTopic(group)); err != nil {
			return sent, skipped, err
		}
		m := dlq.ResendMessage(rec, group, target, queue)
		m.StoreHost = b.storeHost
		batch, batchOffs = append(batch, m), append(batchOffs, qo)
		if len(batch) >= 256 {
			if err := flush(); err != nil {
				return sent, skipped, err
			}
		}
	}
	if err := flush(); err != nil {
		return sent, skipped, err
	}
	b.log.Info().Str("group", group).Int("count", sent).Int("skipped", skipped).Msg("dead letters resent")
	return sent, skipped, nil
}
