package broker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Drain stops (true) or resumes (false) accepting sends. A drained broker
// registers its queues read-only, so producers move elsewhere while
// consumers drain it.
func (a *Admin) Drain(on bool) {
	a.drained.Store(on)
	a.log.Info().Bool("drained", on).Msg("drain state changed")
	a.registrar.wait()
}

// GroupInfo is a group's config and whether clients are online.
type GroupInfo = protocol.GroupState

// Groups lists every configured group.
func (a *Admin) Groups() []GroupInfo {
	var out []GroupInfo
	for _, g := range a.groups.all() {
		gi := GroupInfo{SubscriptionGroupConfig: g, Online: len(a.clients.consumerIDs(g.GroupName))}
		_, model := a.clients.subscriptionOf(g.GroupName, protocol.RetryTopic(g.GroupName))
		gi.Broadcast = model == remoting.MessageModelBroadcast
		out = append(out, gi)
	}
	return out
}

// PutGroup creates or updates a group config (refused while the data disk
// is full; groups created on first use are not).
func (a *Admin) PutGroup(gc GroupConfig) error {
	if err := a.meta.writable(); err != nil {
		return err
	}
	return a.groups.put(gc)
}

// Group returns a group's config.
func (a *Admin) Group(name string) (GroupConfig, bool) { return a.groups.get(name) }

// Topic returns a topic's config.
func (a *Admin) Topic(name string) (TopicConfig, bool) { return a.topics.get(name) }

// Topics lists the topic names.
func (a *Admin) Topics() []string { return a.topics.names() }

// GroupClients lists a group's online clients.
func (a *Admin) GroupClients(group string) []ClientInfo { return a.clients.clients(group) }

// ResetOffset sets a group's committed offsets of topic: every queue to
// the offset offsetFor returns. The group must have no online consumers
// (they would overwrite the reset with their in-memory offsets), as
// Kafka's reset requires an inactive group.
func (a *Admin) ResetOffset(group, topic string, offsetFor func(q int32) (int64, error)) (map[int32]int64, error) {
	if n := len(a.clients.consumerIDs(group)); n > 0 {
		return nil, fmt.Errorf("%w: group %s has %d online consumers; stop them before resetting offsets", ErrInvalidRequest, group, n)
	}
	tc, ok := a.topics.get(topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	out := map[int32]int64{}
	for q := int32(0); q < tc.ReadQueueNums; q++ {
		off, err := offsetFor(q)
		if err != nil {
			return nil, err
		}
		off = max(a.minOffset(topic, q), min(off, a.cq.MaxOffset(topic, q)))
		out[q] = off
	}
	if err := a.offsets.writable(); err != nil {
		return nil, err
	}
	for q, off := range out {
		a.offsets.set(group, topic, q, off)
	}
	return out, a.offsets.flush()
}

// QueueOffsetAt answers the offset-reset targets of a queue: "earliest",
// "latest", a store time in ms ("time"), or an explicit offset.
func (a *Admin) QueueOffsetAt(topic string, q int32, to string, value int64) (int64, error) {
	switch to {
	case "earliest":
		return a.cq.MinOffset(topic, q)
	case "latest":
		return a.cq.MaxOffset(topic, q), nil
	case "time":
		return a.cq.OffsetByTime(topic, q, value)
	case "offset":
		return value, nil
	}
	return 0, fmt.Errorf("%w: reset target %q: want earliest, latest, time or offset", ErrInvalidRequest, to)
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
	recs, err := h.msgs.MessagesByKey(topic, key, begin, end, int(maxNum))
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
		raw, err = h.msgs.MessageByID(id)
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

// ConfigMap returns the configuration in force as TOML key → value text.
func (a *Admin) ConfigMap() map[string]string { return a.conf.asMap() }

// SetConfig changes one run-time configurable key and keeps the change
// across restarts (a kept change wins over the config file, the
// environment and the flags).
func (a *Admin) SetConfig(key, value string) error { return a.conf.set(key, value) }

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
