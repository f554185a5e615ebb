package client

import (
	"context"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

func (e *rmqPush) startOffset(ctx context.Context, addr string, mq MessageQueue) (int64, error) {
	ext := queueExt(mq)
	if e.cfg.broadcast {
		e.mu.Lock()
		off, ok := e.offsets[mq]
		e.mu.Unlock()
		if ok {
			return off, nil
		}
	} else {
		ext["consumerGroup"] = e.cfg.group
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		off, err := offsetCall(actx, e.cmd, addr, protocol.ReqQueryConsumerOffset, ext)
		cancel()
		if err != nil {
			return 0, err
		}
		if off >= 0 {
			return off, nil
		}
		delete(ext, "consumerGroup")
		if mq.Topic == protocol.RetryTopic(e.cfg.group) {
			return 0, nil
		}
	}
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	switch e.cfg.consumeFrom {
	case ConsumeFromFirstOffset:
		return 0, nil
	case ConsumeFromTimestamp:
		ext["timestamp"] = i64(e.cfg.consumeTimestamp.UnixMilli())
		return offsetCall(actx, e.cmd, addr, protocol.ReqSearchOffsetByTimestamp, ext)
	}
	return offsetCall(actx, e.cmd, addr, protocol.ReqGetMaxOffset, ext)
}

// commit stores q's commit offset on its broker (clustering) or in memory
// (broadcasting).
func (e *rmqPush) commit(ctx context.Context, q *processQueue, force bool) {
	off := q.commitOffset()
	if e.cfg.broadcast {
		e.mu.Lock()
		e.offsets[q.mq] = off
		e.mu.Unlock()
		return
	}
	if !force && off == q.lastCommitted() {
		return
	}
	addr, ok := e.routes.brokerAddr(q.mq.BrokerName)
	if !ok {
		return
	}
	ext := queueExt(q.mq)
	ext["consumerGroup"] = e.cfg.group
	ext["commitOffset"] = i64(off)
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := offsetCall(actx, e.cmd, addr, protocol.ReqUpdateConsumerOffset, ext)
	cancel()
	if err != nil {
		logAt(e.cfg.logger, LogWarn, "commit offset", "topic", q.mq.Topic, "queue_id", q.mq.QueueID, "offset", off, "err", err)
		return
	}
	q.markCommitted(off)
}

func (e *rmqPush) commitAll(ctx context.Context, force bool) {
	for _, q := range e.owned() {
		e.commit(ctx, q, force)
	}
	if e.offsetFile != "" {
		e.mu.Lock()
		offs := make(map[MessageQueue]int64, len(e.offsets))
		for q, off := range e.offsets {
			offs[q] = off
		}
		e.mu.Unlock()
		if err := saveBroadcastOffsets(e.offsetFile, offs); err != nil {
			logAt(e.cfg.logger, LogWarn, "save broadcast offsets", "file", e.offsetFile, "err", err)
		}
	}
}
