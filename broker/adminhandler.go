package broker

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// adminHandler serves the administration request codes over an Admin:
// the remoting face of admin.go and ops.go.
type adminHandler struct {
	a    *Admin
	msgs messageLookup // the message reader (reader.go)
}

// messageLookup finds stored messages by key and by message id.
type messageLookup interface {
	byKey(topic, key string, begin, end int64, max int) ([][]byte, error)
	byID(id string) ([]byte, error)
}

// routes registers the administration codes, with timed.
func (h adminHandler) routes(timed func(int16, func(*remoting.Conn, *remoting.Command))) {
	timed(protocol.ReqUpdateAndCreateTopic, h.handleCreateTopic)
	timed(protocol.ReqDeleteTopicInBroker, h.handleDeleteTopic)
	timed(protocol.ReqGetAllTopicConfig, h.handleAllTopics)
	timed(protocol.ReqGetAllSubscriptionGroupConfig, h.handleAllGroups)
	timed(protocol.ReqUpdateAndCreateGroup, h.handleCreateGroup)
	timed(protocol.ReqDeleteSubscriptionGroup, h.handleDeleteGroup)
	timed(protocol.ReqGetBrokerRuntimeInfo, h.handleRuntimeInfo)
	timed(protocol.ReqGetTopicStatsInfo, h.handleTopicStats)
	timed(protocol.ReqGetConsumeStats, h.handleConsumeStats)
	timed(protocol.ReqGetConsumerConnList, h.handleConsumerConns)
	timed(protocol.ReqQueryMessage, h.handleQueryMessage)
	timed(protocol.ReqViewMessageByID, h.handleViewMessage)
	timed(protocol.ReqGetBrokerConfig, h.handleGetConfig)
	timed(protocol.ReqUpdateBrokerConfig, h.handleSetConfig)
	timed(protocol.ReqResetOffset, h.handleResetOffset)
	timed(protocol.ReqFerryDLQList, h.handleDLQList)
	timed(protocol.ReqFerryDLQResend, h.handleDLQResend)
	timed(protocol.ReqFerryDrain, func(c *remoting.Conn, req *remoting.Command) {
		h.a.Drain(true)
		reply(c, req, protocol.RespSuccess, "")
	})
	timed(protocol.ReqFerryUndrain, func(c *remoting.Conn, req *remoting.Command) {
		h.a.Drain(false)
		reply(c, req, protocol.RespSuccess, "")
	})
	timed(protocol.ReqFerryGroupList, func(c *remoting.Conn, req *remoting.Command) { replyJSON(c, req, h.a.Groups()) })
}

// reply answers req with code and remark; replyJSON answers it with v
// as the body, and replyErr with the code of err's class.
func reply(c *remoting.Conn, req *remoting.Command, code int16, remark string) {
	_ = c.Reply(remoting.NewResponse(req, code, remark))
}

func replyJSON(c *remoting.Conn, req *remoting.Command, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	_ = c.Reply(resp)
}

func replyErr(c *remoting.Conn, req *remoting.Command, err error) {
	code := int16(protocol.RespSystemError)
	switch {
	case errors.Is(err, ErrTopicNotFound):
		code = protocol.RespTopicNotExist
	case errors.Is(err, ErrGroupNotFound):
		code = protocol.RespSubscriptionGroupNotExist
	case errors.Is(err, ErrTopicSystem), errors.Is(err, ErrNoPermission):
		code = protocol.RespNoPermission
	case errors.Is(err, ErrDiskFull):
		code = protocol.RespServiceNotAvailable
	}
	reply(c, req, code, err.Error())
}

func (h adminHandler) handleCreateTopic(c *remoting.Conn, req *remoting.Command) {
	var tc TopicConfig
	var err error
	if tc.TopicName, err = req.String("topic"); err != nil {
		replyErr(c, req, err)
		return
	}
	if tc.ReadQueueNums, err = req.Int32Or("readQueueNums", 8); err == nil {
		if tc.WriteQueueNums, err = req.Int32Or("writeQueueNums", 8); err == nil {
			if tc.Perm, err = req.Int32Or("perm", 6); err == nil {
				tc.TopicSysFlag, err = req.Int32Or("topicSysFlag", 0)
			}
		}
	}
	if err != nil {
		replyErr(c, req, err)
		return
	}
	tc.TopicFilterType = req.StringOr("topicFilterType", remoting.TopicFilterSingleTag)
	tc.Order = req.StringOr("order", "false") == "true"
	// Ferry's own field; RocketMQ's tools leave it out, which keeps it.
	if s, ok := req.ExtFields["dedupWindow"]; ok {
		if tc.DedupWindowMs, err = strconv.ParseInt(s, 10, 64); err != nil {
			reply(c, req, protocol.RespSystemError, "dedupWindow "+strconv.Quote(s)+" is not a number of milliseconds")
			return
		}
	} else if cur, ok := h.a.topics.get(tc.TopicName); ok {
		tc.DedupWindowMs = cur.DedupWindowMs
	}
	if err := h.a.CreateTopic(tc); err != nil {
		replyErr(c, req, err)
		return
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (h adminHandler) handleDeleteTopic(c *remoting.Conn, req *remoting.Command) {
	name, err := req.String("topic")
	if err == nil {
		err = h.a.DeleteTopic(name)
	}
	if err != nil {
		replyErr(c, req, err)
		return
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (h adminHandler) handleAllTopics(c *remoting.Conn, req *remoting.Command) {
	m, v := h.a.topics.snapshot()
	replyJSON(c, req, remoting.TopicConfigSerializeWrapper{TopicConfigTable: m, DataVersion: v})
}

func (h adminHandler) handleAllGroups(c *remoting.Conn, req *remoting.Command) {
	table := map[string]GroupConfig{}
	for _, g := range h.a.groups.all() {
		table[g.GroupName] = g
	}
	replyJSON(c, req, map[string]any{"subscriptionGroupTable": table, "dataVersion": remoting.DataVersion{Timestamp: time.Now().UnixMilli()}})
}

func (h adminHandler) handleCreateGroup(c *remoting.Conn, req *remoting.Command) {
	var gc GroupConfig
	if err := json.Unmarshal(req.Body, &gc); err != nil {
		reply(c, req, protocol.RespSystemError, "malformed group config: "+err.Error())
		return
	}
	if err := h.a.PutGroup(gc); err != nil {
		replyErr(c, req, err)
		return
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (h adminHandler) handleDeleteGroup(c *remoting.Conn, req *remoting.Command) {
	name, err := req.String("groupName")
	if err == nil {
		err = h.a.DeleteGroup(name)
	}
	if err != nil {
		replyErr(c, req, err)
		return
	}
	reply(c, req, protocol.RespSuccess, "")
}

func (h adminHandler) handleRuntimeInfo(c *remoting.Conn, req *remoting.Command) {
	replyJSON(c, req, h.a.Runtime())
}

func (h adminHandler) handleTopicStats(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	st, err := h.a.TopicStats(topic)
	if err != nil {
		replyErr(c, req, err)
		return
	}
	replyJSON(c, req, protocol.TopicStats{Topic: topic, Queues: st})
}

func (h adminHandler) handleConsumeStats(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	replyJSON(c, req, protocol.ConsumeStats{Group: group, Queues: h.a.ConsumeStats(group)})
}

func (h adminHandler) handleConsumerConns(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	replyJSON(c, req, map[string]any{"group": group, "clients": h.a.clients.clients(group), "subscriptions": h.a.clients.groupSubscriptions(group)})
}

func (h adminHandler) handleResetOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	topic, err := req.String("topic")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	to := req.StringOr("to", "time")
	value, _ := req.Int64Or("value", 0)
	if ts, err := req.Int64Or("timestamp", -1); err == nil && ts >= 0 && !req.Has("to") {
		value = ts
	}
	res, err := h.a.ResetOffset(group, topic, func(q int32) (int64, error) { return h.a.QueueOffsetAt(topic, q, to, value) })
	if err != nil {
		replyErr(c, req, err)
		return
	}
	replyJSON(c, req, map[string]any{"group": group, "topic": topic, "offsets": res})
}

func (h adminHandler) handleQueryMessage(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	key, err := req.String("key")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	maxNum, _ := req.Int32Or("maxNum", 32)
	begin, _ := req.Int64Or("beginTimestamp", 0)
	end, _ := req.Int64Or("endTimestamp", 0)
	recs, err := h.msgs.byKey(topic, key, begin, end, int(maxNum))
	if err != nil {
		replyErr(c, req, err)
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if len(recs) == 0 {
		resp.Code, resp.Remark = protocol.RespQueryNotFound, "can not find message, maybe time range not correct"
	}
	for _, r := range recs {
		resp.Body = append(resp.Body, r...)
	}
	resp.Set("indexLastUpdateTimestamp", strconv.FormatInt(h.a.clog.WrittenOffset(), 10))
	resp.Set("indexLastUpdatePhyoffset", strconv.FormatInt(h.a.cq.DispatchedOffset(), 10))
	_ = c.Reply(resp)
}

func (h adminHandler) handleViewMessage(c *remoting.Conn, req *remoting.Command) {
	var raw []byte
	var err error
	if id := req.StringOr("msgId", ""); id != "" {
		raw, err = h.msgs.byID(id)
	} else {
		var off int64
		if off, err = req.Int64("offset"); err == nil {
			_, raw, err = h.a.clog.ReadRecord(off, nil)
		}
	}
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = raw
	_ = c.Reply(resp)
}

func (h adminHandler) handleDLQList(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	from, _ := req.Int64Or("from", 0)
	n, _ := req.Int32Or("max", 100)
	list, next, err := h.a.DLQList(group, from, int(n))
	if err != nil {
		replyErr(c, req, err)
		return
	}
	if list == nil {
		list = []dlq.DeadLetter{}
	}
	replyJSON(c, req, protocol.DLQPage{Group: group, DeadLetters: list, Next: next})
}

func (h adminHandler) handleDLQResend(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		replyErr(c, req, err)
		return
	}
	target, err := dlq.ParseTarget(req.StringOr("target", "topic"))
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	var offsets []int64
	if s := req.StringOr("offsets", ""); s != "" {
		for _, f := range strings.Split(s, ",") {
			o, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				reply(c, req, protocol.RespSystemError, "offsets must be comma-separated integers")
				return
			}
			offsets = append(offsets, o)
		}
	}
	n, skipped, err := h.a.DLQResend(group, offsets, target)
	if err != nil {
		replyErr(c, req, err)
		return
	}
	replyJSON(c, req, protocol.DLQResendResult{Group: group, Resent: n, Skipped: skipped})
}

func (h adminHandler) handleGetConfig(c *remoting.Conn, req *remoting.Command) {
	body, _ := json.Marshal(h.a.ConfigMap())
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	_ = c.Reply(resp)
}

func (h adminHandler) handleSetConfig(c *remoting.Conn, req *remoting.Command) {
	var kv map[string]string
	if err := json.Unmarshal(req.Body, &kv); err != nil {
		reply(c, req, protocol.RespSystemError, "body must be a JSON object of key → value: "+err.Error())
		return
	}
	for k, v := range kv {
		if err := h.a.SetConfig(k, v); err != nil {
			replyErr(c, req, err)
			return
		}
	}
	reply(c, req, protocol.RespSuccess, "")
}
