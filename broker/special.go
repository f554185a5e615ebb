package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// Limits of arbitrary delivery times.
const (
	MinTimerDelay = time.Second
	MaxTimerDelay = 40 * 24 * time.Hour
)

// ErrDelayInvalid rejects a delay level or delivery time out of range.
var ErrDelayInvalid = errors.New("broker: invalid delay")

// routeSpecial rewrites a message bound for later or for the dead-letter
// queue: a send to a retry topic past the group's retry limit goes to the
// group's DLQ; a DELAY level goes to the schedule topic (queue level-1);
// a TIMER_* delivery time goes to the timer topic. The real topic and
// queue are kept in REAL_TOPIC / REAL_QID.
func (s *sender) routeSpecial(m *commitlog.Message, h *sendHeader) error {
	if len(m.Properties) == 0 && !strings.HasPrefix(m.Topic, protocol.RetryTopicPrefix) {
		return nil
	}
	if strings.HasPrefix(m.Topic, protocol.RetryTopicPrefix) {
		group := strings.TrimPrefix(m.Topic, protocol.RetryTopicPrefix)
		limit := s.cfg().RetryMaxTimes
		if gc, ok := s.groups.get(group); ok {
			limit = gc.RetryMaxTimes
		}
		if h.hasMaxReconsume && h.maxReconsumeTimes > 0 {
			limit = h.maxReconsumeTimes
		}
		if m.ReconsumeTimes >= limit {
			return s.toDLQ(m, group)
		}
	}
	if protocol.IsScheduledTopic(m.Topic) {
		return nil // already scheduled (a redelivery re-put by the broker itself)
	}
	props := m.Properties
	if v, ok := protocol.Property(props, protocol.PropDelayLevel); ok && v != "" && v != "0" {
		level, err := strconv.Atoi(v)
		if err != nil || level < 0 {
			return fmt.Errorf("%w: DELAY %q is not a level 1 to %d", ErrDelayInvalid, v, s.delayLevels)
		}
		if level > s.delayLevels {
			level = s.delayLevels
		}
		return schedule(m, protocol.ScheduleTopic, int32(level-1), map[string]string{protocol.PropDelayLevel: strconv.Itoa(level)})
	}
	deliverAt, ok, err := timerDeliverTime(props, time.Now())
	if err != nil {
		return err
	}
	if ok {
		return schedule(m, protocol.TimerTopic, 0, map[string]string{protocol.PropTimerDeliverMS: strconv.FormatInt(deliverAt, 10)})
	}
	return nil
}

// timerDeliverTime reads TIMER_DELIVER_MS, TIMER_DELAY_SEC or
// TIMER_DELAY_MS and returns the absolute delivery time in ms.
func timerDeliverTime(props []byte, now time.Time) (int64, bool, error) {
	var at int64
	switch {
	case has(props, protocol.PropTimerDeliverMS):
		v, _ := protocol.Property(props, protocol.PropTimerDeliverMS)
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s %q is not a time in ms", ErrDelayInvalid, protocol.PropTimerDeliverMS, v)
		}
		at = ms
	case has(props, protocol.PropTimerDelaySec):
		v, _ := protocol.Property(props, protocol.PropTimerDelaySec)
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 || s > int64(MaxTimerDelay/time.Second) {
			return 0, false, fmt.Errorf("%w: %s %q must be 1 to %d seconds", ErrDelayInvalid, protocol.PropTimerDelaySec, v, int64(MaxTimerDelay/time.Second))
		}
		at = now.UnixMilli() + s*1000
	case has(props, protocol.PropTimerDelayMS):
		v, _ := protocol.Property(props, protocol.PropTimerDelayMS)
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 || ms > MaxTimerDelay.Milliseconds() {
			return 0, false, fmt.Errorf("%w: %s %q must be 1000 to %d ms", ErrDelayInvalid, protocol.PropTimerDelayMS, v, MaxTimerDelay.Milliseconds())
		}
		at = now.UnixMilli() + ms
	default:
		return 0, false, nil
	}
	d := time.Duration(at-now.UnixMilli()) * time.Millisecond
	if d > MaxTimerDelay {
		return 0, false, fmt.Errorf("%w: delivery time %d is %s away; the limit is %s", ErrDelayInvalid, at, d.Round(time.Second), MaxTimerDelay)
	}
	if d < MinTimerDelay {
		// Due now or in the past: deliver at once, as RocketMQ does.
		return 0, false, nil
	}
	return at, true, nil
}

func has(props []byte, key string) bool {
	_, ok := protocol.Property(props, key)
	return ok
}

// schedule moves m to a scheduling topic, keeping its real destination.
func schedule(m *commitlog.Message, topic string, queue int32, set map[string]string) error {
	p := protocol.ParseProperties(m.Properties)
	for k, v := range set {
		p[k] = v
	}
	p[protocol.PropRealTopic] = m.Topic
	p[protocol.PropRealQueueID] = strconv.Itoa(int(m.QueueID))
	m.Properties = protocol.EncodeProperties(p)
	m.Topic, m.QueueID = topic, queue
	return nil
}

// toDLQ moves m to the group's dead-letter queue, delay cleared.
func (s *sender) toDLQ(m *commitlog.Message, group string) error {
	dlq := protocol.DLQTopic(group)
	if _, err := s.ensureGroupTopic(dlq); err != nil {
		return err
	}
	p := protocol.ParseProperties(m.Properties)
	delete(p, protocol.PropDelayLevel)
	delete(p, protocol.PropTimerDeliverMS)
	delete(p, protocol.PropTimerDelaySec)
	delete(p, protocol.PropTimerDelayMS)
	if _, ok := p[protocol.PropRetryTopic]; !ok && strings.HasPrefix(m.Topic, protocol.RetryTopicPrefix) {
		p[protocol.PropRetryTopic] = m.Topic
	}
	m.Properties = protocol.EncodeProperties(p)
	m.Topic, m.QueueID = dlq, 0
	s.log.Info().Str("group", group).Int32("reconsume_times", m.ReconsumeTimes).Msg("message moved to the dead-letter queue")
	return nil
}

// sendBackMessage builds the retry (or dead-letter) copy of a consumed
// record for group.
func (s *sender) sendBackMessage(rec protocol.Record, group string, gc GroupConfig, originMsgID string, delayLevel, maxTimes int32) (commitlog.Message, error) {
	limit := gc.RetryMaxTimes
	if maxTimes >= 0 {
		limit = maxTimes
	}
	p := protocol.ParseProperties(rec.Properties)
	topic := string(rec.Topic)
	if _, ok := p[protocol.PropRetryTopic]; !ok {
		p[protocol.PropRetryTopic] = topic
	}
	if _, ok := p[protocol.PropOriginMessageID]; !ok {
		if originMsgID == "" {
			originMsgID = protocol.OffsetMsgID(rec.StoreHost, rec.PhysicalOffset)
		}
		p[protocol.PropOriginMessageID] = originMsgID
	}
	delete(p, protocol.PropRealTopic)
	delete(p, protocol.PropRealQueueID)
	delete(p, protocol.PropTimerDeliverMS)
	delete(p, protocol.PropTimerDelayMS)
	delete(p, protocol.PropTimerDelaySec)
	m := commitlog.Message{
		Flag: rec.Flag, SysFlag: rec.SysFlag, Body: rec.Body, BornTimestamp: rec.BornTimestamp,
		BornHost: rec.BornHost, StoreHost: s.storeHost(), ReconsumeTimes: rec.ReconsumeTimes + 1,
	}
	d := dlq.Decide(rec.ReconsumeTimes, limit, delayLevel, s.delayLevels)
	if d.DLQ {
		delete(p, protocol.PropDelayLevel)
		dlqTopic := protocol.DLQTopic(group)
		if _, err := s.ensureGroupTopic(dlqTopic); err != nil {
			return m, err
		}
		m.Topic, m.QueueID = dlqTopic, 0
		m.Properties = protocol.EncodeProperties(p)
		s.log.Info().Str("group", group).Str("topic", topic).Int32("reconsume_times", rec.ReconsumeTimes).Msg("message moved to the dead-letter queue")
		return m, nil
	}
	retry := protocol.RetryTopic(group)
	if _, err := s.ensureGroupTopic(retry); err != nil {
		return m, err
	}
	level := d.Level
	p[protocol.PropDelayLevel] = strconv.Itoa(int(level))
	// Stored straight into the schedule topic, due back on the retry topic.
	p[protocol.PropRealTopic] = retry
	p[protocol.PropRealQueueID] = "0"
	m.Topic, m.QueueID = protocol.ScheduleTopic, level-1
	m.Properties = protocol.EncodeProperties(p)
	return m, nil
}
