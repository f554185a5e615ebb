package broker

import (
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// clientHandlers serve the requests of producers and consumers: sends,
// pulls, heartbeats, consumer offsets, queue locks and send-backs. They
// are the broker's request surface for clients and reach its tables
// through b.
type clientHandlers struct {
	b *Broker
}

// routes registers every request the broker serves.
func (b *Broker) routes() {
	m := b.mux
	timed := func(code int16, f func(c *remoting.Conn, req *remoting.Command)) {
		m.Handle(code, b.metrics.instrument(code, f))
	}
	for _, code := range []int16{protocol.ReqSendMessage, protocol.ReqSendMessageV2, protocol.ReqSendBatchMessage} {
		m.HandleBatch(code, sendHandler{ch: b.client, obs: b.metrics.rpcLatency.WithLabelValues(strconv.Itoa(int(code)))})
	}
	b.client.routes(timed)
	timed(protocol.ReqInitProducerID, b.idem.handleInitProducerID)
	timed(protocol.ReqEndTransaction, b.txn.handleEndTransaction)
	timed(protocol.ReqFerryTxList, b.handleTxList)
	timed(protocol.ReqFerryProducerList, b.handleProducerList) // api_transactions.go
	adminHandler{a: b.admin, msgs: b.messages}.routes(timed)
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

// routes registers the requests of producers and consumers; the send
// codes themselves go through sendHandler (send.go).
func (ch *clientHandlers) routes(timed func(int16, func(*remoting.Conn, *remoting.Command))) {
	timed(protocol.ReqFerrySendMulti, ch.handleSendMulti) // send_multi.go
	timed(protocol.ReqPullMessage, ch.handlePull)
	timed(protocol.ReqHeartBeat, ch.handleHeartbeat)
	timed(protocol.ReqUnregisterClient, ch.handleUnregisterClient)
	timed(protocol.ReqGetConsumerListByGroup, ch.handleConsumerList)
	timed(protocol.ReqQueryConsumerOffset, ch.handleQueryOffset)
	timed(protocol.ReqUpdateConsumerOffset, ch.handleUpdateOffset)
	timed(protocol.ReqGetMaxOffset, ch.handleMaxOffset)
	timed(protocol.ReqGetMinOffset, ch.handleMinOffset)
	timed(protocol.ReqSearchOffsetByTimestamp, ch.handleSearchOffset)
	timed(protocol.ReqLockBatchMQ, ch.handleLock)
	timed(protocol.ReqUnlockBatchMQ, ch.handleUnlock)
	timed(protocol.ReqConsumerSendMsgBack, ch.handleSendBack)
}

func (ch *clientHandlers) handleHeartbeat(c *remoting.Conn, req *remoting.Command) {
	var hb remoting.HeartbeatData
	if err := remoting.DecodeBody(req.Body, &hb); err != nil {
		reply(c, req, protocol.RespSystemError, "malformed heartbeat body: "+err.Error())
		return
	}
	if hb.ClientID == "" {
		reply(c, req, protocol.RespSystemError, "heartbeat without clientID")
		return
	}
	now := time.Now()
	info := clientConn{id: hb.ClientID, language: req.Language.String(), version: req.Version}
	hook := false
	for _, cd := range hb.ConsumerDataSet {
		if err := ValidateGroup(cd.GroupName); err != nil {
			reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
		if err := ch.ensureConsumerGroup(cd.GroupName, cd.MessageModel != remoting.MessageModelBroadcast); err != nil {
			reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
		changed, newConn := ch.b.clients.registerConsumer(c, info, cd, now)
		hook = hook || newConn
		if changed {
			ch.b.log.Info().Str("group", cd.GroupName).Str("client_id", hb.ClientID).Str("remote", c.RemoteAddr()).Msg("consumer joined")
			ch.notifyGroupChanged(cd.GroupName)
		}
	}
	for _, pd := range hb.ProducerDataSet {
		if ch.b.clients.registerProducer(c, info, pd.GroupName, now) {
			hook = true
		}
	}
	if hook {
		c.OnClose(func() { ch.connClosed(c, hb.ClientID) })
	}
	reply(c, req, protocol.RespSuccess, "")
}

// ensureConsumerGroup creates, on a group's first heartbeat, its config
// (when groups are auto-created) and, for clustering consumers, its retry
// topic, in one metadata record that is applied and routable but not
// flushed before the answer. A power loss before the log's next flush
// loses only what the client's next heartbeat creates again. Waiting for
// flushes here made the first heartbeat slow enough that the official
// client's route lookup, 10 ms after it starts, missed the retry topic
// and found it only at its next lookup, 30 s later.
func (ch *clientHandlers) ensureConsumerGroup(group string, clustering bool) error {
	var changes []metaChange
	if _, ok := ch.b.groups.get(group); !ok && ch.b.c().AutoCreateGroup {
		changes = append(changes, metaChange{Kind: metaGroupPut, Group: DefaultGroupConfig(group, ch.b.c().RetryMaxTimes)})
	}
	retry := protocol.RetryTopic(group)
	newTopic := false
	if _, ok := ch.b.topics.get(retry); clustering && !ok {
		newTopic = true
		changes = append(changes, metaChange{Kind: metaTopicPut, Topic: groupTopicConfig(retry)})
	}
	if len(changes) == 0 {
		return nil
	}
	if err := ch.b.metaLog.writeUnflushed(changes); err != nil {
		return fmt.Errorf("broker: create group %q: %w", group, err)
	}
	if newTopic {
		ch.b.registrar.wait()
	}
	return nil
}

// connClosed removes a departed connection's clients and tells the rest of
// their groups.
func (ch *clientHandlers) connClosed(c *remoting.Conn, clientID string) {
	groups := ch.b.clients.removeConn(c)
	ch.b.locks.releaseClient(clientID)
	for _, g := range groups {
		ch.b.log.Info().Str("group", g).Str("client_id", clientID).Msg("consumer left")
		ch.notifyGroupChanged(g)
	}
}

// notifyGroupChanged sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every
// client of the group, so they rebalance at once.
func (ch *clientHandlers) notifyGroupChanged(group string) {
	if gc, ok := ch.b.groups.get(group); ok && !gc.NotifyConsumerIDs {
		return
	}
	for _, conn := range ch.b.clients.consumerConns(group) {
		n := remoting.NewRequest(protocol.ReqNotifyConsumerIDsChanged, map[string]string{"consumerGroup": group}, nil)
		if err := conn.SendOneway(n); err != nil {
			ch.b.log.Debug().Err(err).Str("group", group).Msg("notify consumer ids changed")
		}
	}
}

func (ch *clientHandlers) handleUnregisterClient(c *remoting.Conn, req *remoting.Command) {
	id := req.StringOr("clientID", "")
	cg := req.StringOr("consumerGroup", "")
	if ch.b.clients.unregister(id, req.StringOr("producerGroup", ""), cg) {
		ch.notifyGroupChanged(cg)
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (ch *clientHandlers) handleConsumerList(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	ids := ch.b.clients.consumerIDs(group)
	body, _ := (&remoting.ConsumerListBody{ConsumerIDList: ids}).Encode()
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if len(ids) == 0 {
		resp.Code, resp.Remark = protocol.RespSystemError, "no consumer for this group, "+group
	}
	resp.Body = body
	_ = c.Reply(resp)
}

// requestQueue reads the topic and queueId a request names.
func requestQueue(req *remoting.Command) (string, int32, error) {
	topic, err := req.String("topic")
	if err != nil {
		return "", 0, err
	}
	q, err := req.Int32("queueId")
	return topic, q, err
}

func (ch *clientHandlers) handleQueryOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	topic, q, err := requestQueue(req)
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if off, ok := ch.b.offsets.get(group, topic, q); ok {
		resp.Set("offset", strconv.FormatInt(off, 10))
	} else if ch.b.reader.youngQueue(topic, q) {
		// Like RocketMQ: a new group on a queue whose first message is
		// still hot starts from the beginning whatever its policy says.
		resp.Set("offset", "0")
	} else {
		resp.Code, resp.Remark = protocol.RespQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first"
	}
	_ = c.Reply(resp)
}

func (ch *clientHandlers) handleUpdateOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	topic, q, err := requestQueue(req)
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	off, err := req.Int64("commitOffset")
	if err != nil || off < 0 {
		reply(c, req, protocol.RespSystemError, "commitOffset must be a non-negative integer")
		return
	}
	if err := ch.b.meta.writable(); err != nil {
		reply(c, req, protocol.RespServiceNotAvailable, err.Error())
		return
	}
	if err := ch.b.offsets.commit(group, []offsetCommit{{topic, q, off}}); err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (ch *clientHandlers) handleMaxOffset(c *remoting.Conn, req *remoting.Command) {
	ch.answerOffset(c, req, func(topic string, q int32) (int64, error) { return ch.b.cq.MaxOffset(topic, q), nil })
}

func (ch *clientHandlers) handleMinOffset(c *remoting.Conn, req *remoting.Command) {
	ch.answerOffset(c, req, ch.b.cq.MinOffset)
}

func (ch *clientHandlers) handleSearchOffset(c *remoting.Conn, req *remoting.Command) {
	ts, err := req.Int64("timestamp")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	ch.answerOffset(c, req, func(topic string, q int32) (int64, error) { return ch.b.cq.OffsetByTime(topic, q, ts) })
}

func (ch *clientHandlers) answerOffset(c *remoting.Conn, req *remoting.Command, f func(string, int32) (int64, error)) {
	topic, q, err := requestQueue(req)
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
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

func (ch *clientHandlers) handleLock(c *remoting.Conn, req *remoting.Command) {
	var body remoting.LockBatchRequestBody
	if err := remoting.DecodeBody(req.Body, &body); err != nil {
		reply(c, req, protocol.RespSystemError, "malformed lock body: "+err.Error())
		return
	}
	got := ch.b.locks.lock(body.ConsumerGroup, body.ClientID, body.MQSet, time.Now(), ch.b.cfg.QueueLockExpiry.D())
	out, _ := (&remoting.LockBatchResponseBody{LockOKMQSet: got}).Encode()
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = out
	_ = c.Reply(resp)
}

func (ch *clientHandlers) handleUnlock(c *remoting.Conn, req *remoting.Command) {
	var body remoting.LockBatchRequestBody
	if err := remoting.DecodeBody(req.Body, &body); err != nil {
		reply(c, req, protocol.RespSystemError, "malformed unlock body: "+err.Error())
		return
	}
	ch.b.locks.unlock(body.ConsumerGroup, body.ClientID, body.MQSet)
	reply(c, req, protocol.RespSuccess, "")
}

// handleSendBack implements CONSUMER_SEND_MSG_BACK: the failed message goes
// to the group's retry topic at delay level 3 + reconsumeTimes with
// reconsumeTimes + 1, or to the group's DLQ past the retry limit.
func (ch *clientHandlers) handleSendBack(c *remoting.Conn, req *remoting.Command) {
	if why := ch.b.writable(); why != "" {
		reply(c, req, protocol.RespServiceNotAvailable, "service not available now: "+why)
		return
	}
	group, err := req.String("group")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	off, err := req.Int64("offset")
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	delayLevel, _ := req.Int32Or("delayLevel", 0)
	maxTimes, _ := req.Int32Or("maxReconsumeTimes", -1)
	gc, ok := ch.b.groups.get(group)
	if !ok {
		if !ch.b.c().AutoCreateGroup {
			reply(c, req, protocol.RespSubscriptionGroupNotExist, "subscription group not exist, "+group)
			return
		}
		gc = DefaultGroupConfig(group, ch.b.c().RetryMaxTimes)
		if err := ch.b.groups.put(gc); err != nil {
			reply(c, req, protocol.RespSystemError, err.Error())
			return
		}
	}
	rec, _, err := ch.b.clog.ReadRecord(off, nil)
	if err != nil {
		reply(c, req, protocol.RespSystemError, "look message by offset failed, "+strconv.FormatInt(off, 10)+": "+err.Error())
		return
	}
	m, err := ch.b.sender.sendBackMessage(rec, group, gc, req.StringOr("originMsgId", ""), delayLevel, maxTimes)
	if err != nil {
		code, remark := sendError(err)
		reply(c, req, code, remark)
		return
	}
	resp := ch.b.sender.store(req, []commitlog.Message{m})
	_ = c.Reply(resp)
	if resp.Code == protocol.RespSuccess && m.Topic == protocol.ScheduleTopic && ch.b.retryReaders.shouldTell(group, time.Now()) {
		// Its consumers may not read the retry queue yet (retryreaders.go).
		ch.notifyGroupChanged(group)
	}
}
