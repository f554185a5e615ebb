package broker

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// routes registers every request the broker serves.
func (b *Broker) routes() {
	m := b.mux
	timed := func(code int16, f func(c *remoting.Conn, req *remoting.Command)) {
		m.Handle(code, b.metrics.instrument(code, f))
	}
	for _, code := range []int16{protocol.ReqSendMessage, protocol.ReqSendMessageV2, protocol.ReqSendBatchMessage} {
		m.HandleBatch(code, sendHandler{b: b, obs: b.metrics.rpcLatency.WithLabelValues(strconv.Itoa(int(code)))})
	}
	timed(protocol.ReqFerrySendMulti, b.handleSendMulti) // send_multi.go
	timed(protocol.ReqPullMessage, b.handlePull)
	timed(protocol.ReqHeartBeat, b.handleHeartbeat)
	timed(protocol.ReqUnregisterClient, b.handleUnregisterClient)
	timed(protocol.ReqGetConsumerListByGroup, b.handleConsumerList)
	timed(protocol.ReqQueryConsumerOffset, b.handleQueryOffset)
	timed(protocol.ReqUpdateConsumerOffset, b.handleUpdateOffset)
	timed(protocol.ReqGetMaxOffset, b.handleMaxOffset)
	timed(protocol.ReqGetMinOffset, b.handleMinOffset)
	timed(protocol.ReqSearchOffsetByTimestamp, b.handleSearchOffset)
	timed(protocol.ReqLockBatchMQ, b.handleLock)
	timed(protocol.ReqUnlockBatchMQ, b.handleUnlock)
	timed(protocol.ReqConsumerSendMsgBack, b.handleSendBack)
	timed(protocol.ReqInitProducerID, b.idem.handleInitProducerID)
	timed(protocol.ReqEndTransaction, b.txn.handleEndTransaction)
	timed(protocol.ReqFerryTxList, b.handleTxList)
	timed(protocol.ReqFerryProducerList, b.handleProducerList) // api_transactions.go
	b.adminRoutes(timed)
	b.opsRoutes(timed)
	// Served on the connection's read goroutine (remoting.Inliner): a pull
	// answers or parks at once; a send with async flush returns once its
	// write is done (a sync-flush send waits for the group commit, and
	// goes to a handler goroutine). The rare exception is the first pull
	// or send that creates a group or topic, whose record then waits for
	// the flush in sync mode.
	m.SetInlinable(protocol.ReqPullMessage, nil)
	async := func(*remoting.Command) bool { return b.clog.Options().Flush == commitlog.FlushAsync }
	for _, code := range []int16{protocol.ReqSendMessage, protocol.ReqSendMessageV2, protocol.ReqSendBatchMessage, protocol.ReqFerrySendMulti} {
		m.SetInlinable(code, async)
	}
}

func (b *Broker) handleHeartbeat(c *remoting.Conn, req *remoting.Command) {
	var hb remoting.HeartbeatData
	if err := remoting.DecodeBody(req.Body, &hb); err != nil {
		b.reply(c, req, protocol.RespSystemError, "malformed heartbeat body: "+err.Error())
		return
	}
	if hb.ClientID == "" {
		b.reply(c, req, protocol.RespSystemError, "heartbeat without clientID")
		return
	}
	now := time.Now()
	info := clientConn{id: hb.ClientID, language: req.Language.String(), version: req.Version}
	hook := false
	for _, cd := range hb.ConsumerDataSet {
		if err := ValidateGroup(cd.GroupName); err != nil {
			b.reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
		if err := b.ensureConsumerGroup(cd.GroupName, cd.MessageModel != remoting.MessageModelBroadcast); err != nil {
			b.reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
		changed, newConn := b.clients.registerConsumer(c, info, cd, now)
		hook = hook || newConn
		if changed {
			b.log.Info().Str("group", cd.GroupName).Str("client_id", hb.ClientID).Str("remote", c.RemoteAddr()).Msg("consumer joined")
			b.notifyGroupChanged(cd.GroupName)
		}
	}
	for _, pd := range hb.ProducerDataSet {
		if b.clients.registerProducer(c, info, pd.GroupName, now) {
			hook = true
		}
	}
	if hook {
		c.OnClose(func() { b.connClosed(c, hb.ClientID) })
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

// ensureConsumerGroup creates, on a group's first heartbeat, its config
// (when groups are auto-created) and, for clustering consumers, its retry
// topic, in one metadata record that is applied and routable but not
// flushed before the answer. A power loss before the log's next flush
// loses only what the client's next heartbeat creates again. Waiting for
// flushes here made the first heartbeat slow enough that the official
// client's route lookup, 10 ms after it starts, missed the retry topic
// and found it only at its next lookup, 30 s later.
func (b *Broker) ensureConsumerGroup(group string, clustering bool) error {
	var changes []metaChange
	if _, ok := b.groups.get(group); !ok && b.c().AutoCreateGroup {
		changes = append(changes, metaChange{Kind: metaGroupPut, Group: DefaultGroupConfig(group, b.c().RetryMaxTimes)})
	}
	retry := protocol.RetryTopic(group)
	newTopic := false
	if _, ok := b.topics.get(retry); clustering && !ok {
		newTopic = true
		changes = append(changes, metaChange{Kind: metaTopicPut, Topic: groupTopicConfig(retry)})
	}
	if len(changes) == 0 {
		return nil
	}
	if err := b.metaLog.writeUnflushed(changes); err != nil {
		return fmt.Errorf("broker: create group %q: %w", group, err)
	}
	if newTopic {
		b.registerWait()
	}
	return nil
}

// connClosed removes a departed connection's clients and tells the rest of
// their groups.
func (b *Broker) connClosed(c *remoting.Conn, clientID string) {
	groups := b.clients.removeConn(c)
	b.locks.releaseClient(clientID)
	for _, g := range groups {
		b.log.Info().Str("group", g).Str("client_id", clientID).Msg("consumer left")
		b.notifyGroupChanged(g)
	}
}

// notifyGroupChanged sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every
// client of the group, so they rebalance at once.
func (b *Broker) notifyGroupChanged(group string) {
	if gc, ok := b.groups.get(group); ok && !gc.NotifyConsumerIDs {
		return
	}
	for _, conn := range b.clients.consumerConns(group) {
		n := remoting.NewRequest(protocol.ReqNotifyConsumerIDsChanged, map[string]string{"consumerGroup": group}, nil)
		if err := conn.SendOneway(n); err != nil {
			b.log.Debug().Err(err).Str("group", group).Msg("notify consumer ids changed")
		}
	}
}

func (b *Broker) handleUnregisterClient(c *remoting.Conn, req *remoting.Command) {
	id := req.StringOr("clientID", "")
	cg := req.StringOr("consumerGroup", "")
	if b.clients.unregister(id, req.StringOr("producerGroup", ""), cg) {
		b.notifyGroupChanged(cg)
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

func (b *Broker) handleConsumerList(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	ids := b.clients.consumerIDs(group)
	body, _ := (&remoting.ConsumerListBody{ConsumerIDList: ids}).Encode()
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if len(ids) == 0 {
		resp.Code, resp.Remark = protocol.RespSystemError, "no consumer for this group, "+group
	}
	resp.Body = body
	_ = c.Reply(resp)
}

func (b *Broker) topicQueue(req *remoting.Command) (string, int32, error) {
	topic, err := req.String("topic")
	if err != nil {
		return "", 0, err
	}
	q, err := req.Int32("queueId")
	return topic, q, err
}

func (b *Broker) handleQueryOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	topic, q, err := b.topicQueue(req)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if off, ok := b.offsets.get(group, topic, q); ok {
		resp.Set("offset", strconv.FormatInt(off, 10))
	} else if b.youngQueue(topic, q) {
		// Like RocketMQ: a new group on a queue whose first message is
		// still hot starts from the beginning whatever its policy says.
		resp.Set("offset", "0")
	} else {
		resp.Code, resp.Remark = protocol.RespQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"
	}
	_ = c.Reply(resp)
}

// youngQueue reports a queue whose first entry is still at 0 and recent
// enough to be in memory (within hotBytes of the log's end).
func (b *Broker) youngQueue(topic string, q int32) bool {
	if b.minOffset(topic, q) > 0 {
		return false
	}
	if b.cq.MaxOffset(topic, q) == 0 {
		return true
	}
	es, err := b.cq.Get(topic, q, 0, 1, nil)
	if err != nil || len(es) == 0 {
		return false
	}
	return b.clog.WrittenOffset()-es[0].Offset < hotBytes()
}

func (b *Broker) handleUpdateOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	topic, q, err := b.topicQueue(req)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	off, err := req.Int64("commitOffset")
	if err != nil || off < 0 {
		b.reply(c, req, protocol.RespSystemError, "commitOffset must be a non-negative integer")
		return
	}
	if err := b.meta.writable(); err != nil {
		b.reply(c, req, protocol.RespServiceNotAvailable, err.Error())
		return
	}
	if err := b.offsets.commit(group, []offsetCommit{{topic, q, off}}); err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

func (b *Broker) handleMaxOffset(c *remoting.Conn, req *remoting.Command) {
	b.answerOffset(c, req, func(topic string, q int32) (int64, error) { return b.cq.MaxOffset(topic, q), nil })
}

func (b *Broker) handleMinOffset(c *remoting.Conn, req *remoting.Command) {
	b.answerOffset(c, req, b.cq.MinOffset)
}

// minOffset is the queue's first offset still backed by the log; an index
// read error is logged and counts as 0.
func (b *Broker) minOffset(topic string, q int32) int64 {
	off, err := b.cq.MinOffset(topic, q)
	if err != nil {
		b.log.Error().Err(err).Str("topic", topic).Int32("queue_id", q).Msg("min offset")
	}
	return off
}

func (b *Broker) handleSearchOffset(c *remoting.Conn, req *remoting.Command) {
	ts, err := req.Int64("timestamp")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	b.answerOffset(c, req, func(topic string, q int32) (int64, error) { return b.cq.OffsetByTime(topic, q, ts) })
}

func (b *Broker) answerOffset(c *remoting.Conn, req *remoting.Command, f func(string, int32) (int64, error)) {
	topic, q, err := b.topicQueue(req)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	off, err := f(topic, q)
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if err != nil {
		resp.Code, resp.Remark = protocol.RespSystemError, err.Error()
	}
	resp.Set("offset", strconv.FormatInt(off, 10))
	_ = c.Reply(resp)
}

func (b *Broker) handleLock(c *remoting.Conn, req *remoting.Command) {
	var body remoting.LockBatchRequestBody
	if err := remoting.DecodeBody(req.Body, &body); err != nil {
		b.reply(c, req, protocol.RespSystemError, "malformed lock body: "+err.Error())
		return
	}
	got := b.locks.lock(body.ConsumerGroup, body.ClientID, body.MQSet, time.Now(), b.cfg.QueueLockExpiry.D())
	out, _ := (&remoting.LockBatchResponseBody{LockOKMQSet: got}).Encode()
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = out
	_ = c.Reply(resp)
}

func (b *Broker) handleUnlock(c *remoting.Conn, req *remoting.Command) {
	var body remoting.LockBatchRequestBody
	if err := remoting.DecodeBody(req.Body, &body); err != nil {
		b.reply(c, req, protocol.RespSystemError, "malformed unlock body: "+err.Error())
		return
	}
	b.locks.unlock(body.ConsumerGroup, body.ClientID, body.MQSet)
	b.reply(c, req, protocol.RespSuccess, "")
}

// handleSendBack implements CONSUMER_SEND_MSG_BACK: the failed message goes
// to the group's retry topic at delay level 3 + reconsumeTimes with
// reconsumeTimes + 1, or to the group's DLQ past the retry limit.
func (b *Broker) handleSendBack(c *remoting.Conn, req *remoting.Command) {
	if why := b.writable(); why != "" {
		b.reply(c, req, protocol.RespServiceNotAvailable, "service not available now: "+why)
		return
	}
	group, err := req.String("group")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	off, err := req.Int64("offset")
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	delayLevel, _ := req.Int32Or("delayLevel", 0)
	maxTimes, _ := req.Int32Or("maxReconsumeTimes", -1)
	gc, ok := b.groups.get(group)
	if !ok {
		if !b.c().AutoCreateGroup {
			b.reply(c, req, protocol.RespSubscriptionGroupNotExist, "subscription group not exist, "+group)
			return
		}
		gc = DefaultGroupConfig(group, b.c().RetryMaxTimes)
		if err := b.groups.put(gc); err != nil {
			b.reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
	}
	rec, _, err := b.clog.ReadRecord(off, nil)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, "look message by offset failed, "+strconv.FormatInt(off, 10)+": "+err.Error())
		return
	}
	m, err := b.sendBackMessage(rec, group, gc, req.StringOr("originMsgId", ""), delayLevel, maxTimes)
	if err != nil {
		code, remark := sendError(err)
		b.reply(c, req, code, remark)
		return
	}
	resp := b.store(req, []commitlog.Message{m})
	_ = c.Reply(resp)
	if resp.Code == protocol.RespSuccess && m.Topic == protocol.ScheduleTopic && b.retryReaders.shouldTell(group, time.Now()) {
		// Its consumers may not read the retry queue yet (retryreaders.go).
		b.notifyGroupChanged(group)
	}
}

// sendBackMessage builds the retry (or dead-letter) copy of a consumed
// record for group.
func (b *Broker) sendBackMessage(rec protocol.Record, group string, gc GroupConfig, originMsgID string, delayLevel, maxTimes int32) (commitlog.Message, error) {
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
		BornHost: rec.BornHost, StoreHost: b.storeHost, ReconsumeTimes: rec.ReconsumeTimes + 1,
	}
	d := dlq.Decide(rec.ReconsumeTimes, limit, delayLevel, len(b.delays))
	if d.DLQ {
		delete(p, protocol.PropDelayLevel)
		dlqTopic := protocol.DLQTopic(group)
		if _, err := b.ensureGroupTopic(dlqTopic); err != nil {
			return m, err
		}
		m.Topic, m.QueueID = dlqTopic, 0
		m.Properties = protocol.EncodeProperties(p)
		b.log.Info().Str("group", group).Str("topic", topic).Int32("reconsume_times", rec.ReconsumeTimes).Msg("message moved to the dead-letter queue")
		return m, nil
	}
	retry := protocol.RetryTopic(group)
	if _, err := b.ensureGroupTopic(retry); err != nil {
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
