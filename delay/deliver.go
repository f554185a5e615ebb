package delay

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// laneScratch is the driver's reusable buffers.
type laneScratch struct {
	entries []consumequeue.Entry
	buf     []byte
	due     []commitlog.Message
}

// levelBatch is how many schedule-queue entries one level step reads.
const levelBatch = 256

// stepLevel delivers the due head of level l+1's queue and tells the plan
// when the level is to run again: at its next entry's due time, when its
// queue grows, at once after a full batch, or after retryDelay on error.
func (s *Service) stepLevel(p *plan, l int, now time.Time, st *laneScratch) {
	n := l + 1
	q := int32(l)
	delay := s.cfg.Levels[l]
	s.mu.Lock()
	pos := s.levelPos[l]
	s.mu.Unlock()
	var err error
	st.entries, err = s.cfg.Queues.Get(s.cfg.ScheduleTopic, q, pos, levelBatch, st.entries[:0])
	if err != nil {
		s.log.Error().Err(err).Int("level", n).Msg("delay: read schedule queue")
		p.Failed(l, now)
		return
	}
	st.due = st.due[:0]
	next := pos
	var head time.Time // due time of the first entry not yet due
	for _, e := range st.entries {
		if e.Size == 0 {
			next = e.QueueOffset + 1 // a hole: nothing to deliver
			continue
		}
		var rec protocol.Record
		rec, st.buf, err = s.cfg.Log.ReadRecord(e.Offset, st.buf)
		if err != nil {
			s.log.Error().Err(err).Int("level", n).Int64("offset", e.Offset).Msg("delay: skipping unreadable scheduled message")
			next = e.QueueOffset + 1
			continue
		}
		if at := time.UnixMilli(rec.StoreTimestamp).Add(delay); at.After(now) {
			head = at
			break
		}
		m, err := dueMessage(rec)
		if err != nil {
			s.log.Error().Err(err).Int64("offset", e.Offset).Msg("delay: dropping scheduled message without a destination")
			next = e.QueueOffset + 1
			continue
		}
		st.due = append(st.due, m)
		next = e.QueueOffset + 1
	}
	if len(st.due) > 0 {
		if err := s.cfg.Put.PutDue(st.due); err != nil {
			s.log.Error().Err(err).Int("level", n).Msg("delay: redelivery failed; retrying")
			p.Failed(l, now)
			return
		}
	}
	if next != pos {
		s.mu.Lock()
		s.levelPos[l] = next
		s.dirty = true
		s.mu.Unlock()
		p.Advanced(now)
	}
	switch {
	case !head.IsZero():
		// Entries appended meanwhile are due after the head: no need
		// to hear of them.
		p.WaitUntil(l, head)
	case len(st.entries) == levelBatch:
		p.More(l)
	default:
		// Drained: arm the queue's notification, then look once more.
		// An append before the arming is seen here, one after it
		// reaches Wake.
		s.cfg.Queues.Notify(s.cfg.ScheduleTopic, q)
		if s.cfg.Queues.MaxOffset(s.cfg.ScheduleTopic, q) > next {
			p.More(l)
		} else {
			p.Drained(l)
		}
	}
}

// dueMessage rebuilds the message to deliver from a scheduled record:
// same body, flags, born info, reconsume count and properties (the msgId
// in UNIQ_KEY included), minus the scheduling properties, to REAL_TOPIC /
// REAL_QID.
func dueMessage(rec protocol.Record) (commitlog.Message, error) {
	p := protocol.ParseProperties(rec.Properties)
	topic := p[protocol.PropRealTopic]
	qid, err := strconv.Atoi(p[protocol.PropRealQueueID])
	if topic == "" || err != nil || qid < 0 {
		return commitlog.Message{}, fmt.Errorf("delay: record at %d has no REAL_TOPIC/REAL_QID", rec.PhysicalOffset)
	}
	delete(p, protocol.PropDelayLevel)
	delete(p, protocol.PropTimerDeliverMS)
	delete(p, protocol.PropTimerDelaySec)
	delete(p, protocol.PropTimerDelayMS)
	return commitlog.Message{
		Topic: topic, QueueID: int32(qid), Flag: rec.Flag, SysFlag: rec.SysFlag,
		Body: append([]byte(nil), rec.Body...), Properties: protocol.EncodeProperties(p),
		BornTimestamp: rec.BornTimestamp, BornHost: rec.BornHost, StoreHost: rec.StoreHost,
		ReconsumeTimes: rec.ReconsumeTimes,
	}, nil
}

// timerBatch is how many timer-index entries one timer step delivers.
const timerBatch = 512

// stepTimer delivers the due entries of the timer index and tells the
// plan when to run again: at the next entry's due time, when the index
// rings, at once after a full batch, or after retryDelay on error.
func (s *Service) stepTimer(p *plan, l int, now time.Time, st *laneScratch) {
	s.mu.Lock()
	cur := s.cursor
	s.mu.Unlock()
	keys, next, err := s.timer.scan(cur, now.UnixMilli(), timerBatch)
	if err != nil {
		s.log.Error().Err(err).Msg("delay: scan timer index")
		p.Failed(l, now)
		return
	}
	st.due = st.due[:0]
	for _, k := range keys {
		var rec protocol.Record
		rec, st.buf, err = s.cfg.Log.ReadRecord(k.off, st.buf)
		if err != nil {
			s.log.Error().Err(err).Int64("offset", k.off).Msg("delay: skipping unreadable timer message")
			continue
		}
		m, err := dueMessage(rec)
		if err != nil {
			s.log.Error().Err(err).Msg("delay: dropping timer message without a destination")
			continue
		}
		st.due = append(st.due, m)
	}
	if len(st.due) > 0 {
		if err := s.cfg.Put.PutDue(st.due); err != nil {
			s.log.Error().Err(err).Msg("delay: timer redelivery failed; retrying")
			p.Failed(l, now)
			return
		}
	}
	if len(keys) > 0 {
		last := keys[len(keys)-1]
		s.mu.Lock()
		s.cursor = timerKey{due: last.due, off: last.off + 1}
		s.dirty = true
		s.mu.Unlock()
		p.Advanced(now)
		if err := s.timer.deleteThrough(last); err != nil {
			s.log.Warn().Err(err).Msg("delay: trim delivered timer entries")
		}
	}
	switch {
	case len(keys) == timerBatch:
		p.More(l)
	case next.due > 0:
		p.WaitUntil(l, time.UnixMilli(next.due))
	default:
		p.Drained(l)
	}
}
