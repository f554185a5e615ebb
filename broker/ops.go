package broker

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func (b *Broker) opsRoutes(timed func(int16, func(*remoting.Conn, *remoting.Command))) {
	timed(protocol.ReqQueryMessage, b.handleQueryMessage)
	timed(protocol.ReqViewMessageByID, b.handleViewMessage)
	timed(protocol.ReqGetBrokerConfig, b.handleGetConfig)
	timed(protocol.ReqUpdateBrokerConfig, b.handleSetConfig)
	timed(protocol.ReqResetOffset, b.handleResetOffset)
	timed(protocol.ReqFerryDLQList, b.handleDLQList)
	timed(protocol.ReqFerryDLQResend, b.handleDLQResend)
	timed(protocol.ReqFerryDrain, func(c *remoting.Conn, req *remoting.Command) {
		b.Drain(true)
		b.reply(c, req, protocol.RespSuccess, "")
	})
	timed(protocol.ReqFerryUndrain, func(c *remoting.Conn, req *remoting.Command) {
		b.Drain(false)
		b.reply(c, req, protocol.RespSuccess, "")
	})
	timed(protocol.ReqFerryGroupList, func(c *remoting.Conn, req *remoting.Command) { b.replyJSON(c, req, b.Groups()) })
}

// Drain stops (true) or resumes (false) accepting sends. A drained broker
// registers its queues read-only, so producers move elsewhere while
// consumers drain it.
func (b *Broker) Drain(on bool) {
	b.drained.Store(on)
	b.log.Info().Bool("drained", on).Msg("drain state changed")
	b.registerWait()
}

// GroupInfo is a group's config and whether clients are online.
type GroupInfo = protocol.GroupState

// Groups lists every configured group.
func (b *Broker) Groups() []GroupInfo {
	var out []GroupInfo
	for _, g := range b.groups.all() {
		gi := GroupInfo{SubscriptionGroupConfig: g, Online: len(b.clients.consumerIDs(g.GroupName))}
		_, model := b.clients.subscriptionOf(g.GroupName, protocol.RetryTopic(g.GroupName))
		gi.Broadcast = model == remoting.MessageModelBroadcast
		out = append(out, gi)
	}
	return out
}

// PutGroup creates or updates a group config (refused while the data disk
// is full; groups created on first use are not).
func (b *Broker) PutGroup(gc GroupConfig) error {
	if err := b.meta.writable(); err != nil {
		return err
	}
	return b.groups.put(gc)
}

// Group returns a group's config.
func (b *Broker) Group(name string) (GroupConfig, bool) { return b.groups.get(name) }

// Topic returns a topic's config.
func (b *Broker) Topic(name string) (TopicConfig, bool) { return b.topics.get(name) }

// Topics lists the topic names.
func (b *Broker) Topics() []string { return b.topics.names() }

// GroupClients lists a group's online clients.
func (b *Broker) GroupClients(group string) []ClientInfo { return b.clients.clients(group) }

// ResetOffset sets a group's committed offsets of topic: every queue to
// the offset offsetFor returns. The group must have no online consumers
// (they would overwrite the reset with their in-memory offsets), as
// Kafka's reset requires an inactive group.
func (b *Broker) ResetOffset(group, topic string, offsetFor func(q int32) (int64, error)) (map[int32]int64, error) {
	if n := len(b.clients.consumerIDs(group)); n > 0 {
		return nil, fmt.Errorf("%w: group %s has %d online consumers; stop them before resetting offsets", ErrInvalidRequest, group, n)
	}
	tc, ok := b.topics.get(topic)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	out := map[int32]int64{}
	for q := int32(0); q < tc.ReadQueueNums; q++ {
		off, err := offsetFor(q)
		if err != nil {
			return nil, err
		}
		off = max(b.reader.minOffset(topic, q), min(off, b.cq.MaxOffset(topic, q)))
		out[q] = off
	}
	if err := b.offsets.writable(); err != nil {
		return nil, err
	}
	for q, off := range out {
		b.offsets.set(group, topic, q, off)
	}
	return out, b.offsets.flush()
}

// QueueOffsetAt answers the offset-reset targets of a queue: "earliest",
// "latest", a store time in ms ("time"), or an explicit offset.
func (b *Broker) QueueOffsetAt(topic string, q int32, to string, value int64) (int64, error) {
	switch to {
	case "earliest":
		return b.cq.MinOffset(topic, q)
	case "latest":
		return b.cq.MaxOffset(topic, q), nil
	case "time":
		return b.cq.OffsetByTime(topic, q, value)
	case "offset":
		return value, nil
	}
	return 0, fmt.Errorf("%w: reset target %q: want earliest, latest, time or offset", ErrInvalidRequest, to)
}

func (b *Broker) handleResetOffset(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	topic, err := req.String("topic")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	to := req.StringOr("to", "time")
	value, _ := req.Int64Or("value", 0)
	if ts, err := req.Int64Or("timestamp", -1); err == nil && ts >= 0 && !req.Has("to") {
		value = ts
	}
	res, err := b.ResetOffset(group, topic, func(q int32) (int64, error) { return b.QueueOffsetAt(topic, q, to, value) })
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.replyJSON(c, req, map[string]any{"group": group, "topic": topic, "offsets": res})
}

func (b *Broker) handleQueryMessage(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	key, err := req.String("key")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	maxNum, _ := req.Int32Or("maxNum", 32)
	begin, _ := req.Int64Or("beginTimestamp", 0)
	end, _ := req.Int64Or("endTimestamp", 0)
	recs, err := b.messages.byKey(topic, key, begin, end, int(maxNum))
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	if len(recs) == 0 {
		resp.Code, resp.Remark = protocol.RespQueryNotFound, "can not find message, maybe time range not correct"
	}
	for _, r := range recs {
		resp.Body = append(resp.Body, r...)
	}
	resp.Set("indexLastUpdateTimestamp", strconv.FormatInt(b.clog.WrittenOffset(), 10))
	resp.Set("indexLastUpdatePhyoffset", strconv.FormatInt(b.cq.DispatchedOffset(), 10))
	_ = c.Reply(resp)
}

func (b *Broker) handleViewMessage(c *remoting.Conn, req *remoting.Command) {
	var raw []byte
	var err error
	if id := req.StringOr("msgId", ""); id != "" {
		raw, err = b.messages.byID(id)
	} else {
		var off int64
		if off, err = req.Int64("offset"); err == nil {
			_, raw, err = b.clog.ReadRecord(off, nil)
		}
	}
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = raw
	_ = c.Reply(resp)
}

func (b *Broker) handleDLQList(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	from, _ := req.Int64Or("from", 0)
	n, _ := req.Int32Or("max", 100)
	list, next, err := b.DLQList(group, from, int(n))
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	if list == nil {
		list = []dlq.DeadLetter{}
	}
	b.replyJSON(c, req, protocol.DLQPage{Group: group, DeadLetters: list, Next: next})
}

func (b *Broker) handleDLQResend(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("group")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	target, err := dlq.ParseTarget(req.StringOr("target", "topic"))
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	var offsets []int64
	if s := req.StringOr("offsets", ""); s != "" {
		for _, f := range strings.Split(s, ",") {
			o, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				b.reply(c, req, protocol.RespSystemError, "offsets must be comma-separated integers")
				return
			}
			offsets = append(offsets, o)
		}
	}
	n, skipped, err := b.DLQResend(group, offsets, target)
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.replyJSON(c, req, protocol.DLQResendResult{Group: group, Resent: n, Skipped: skipped})
}

// dynamicKeys are the config keys `ferry broker config set` may change at
// run time.
var dynamicKeys = map[string]bool{
	"auto_create_topic": true, "auto_create_group": true, "retry_max_times": true, "pull_max_messages": true,
	"pull_max_bytes": true, "long_poll_max": true, "disk_max_used_ratio": true, "default_topic_queue_nums": true,
}

// ConfigMap returns the configuration in force as TOML key → value text.
func (b *Broker) ConfigMap() map[string]string {
	cfg := b.c()
	out := map[string]string{}
	v := reflect.ValueOf(*cfg)
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("toml")
		f := v.Field(i).Interface()
		switch x := f.(type) {
		case Duration:
			out[key] = x.D().String()
		case []string:
			out[key] = strings.Join(x, ",")
		default:
			out[key] = fmt.Sprint(x)
		}
	}
	return out
}

// SetConfig changes one run-time configurable key and keeps the change in
// the metadata store (c/<key>), so that it survives a restart: a kept
// change wins over the config file, the environment and the flags.
func (b *Broker) SetConfig(key, value string) error {
	b.cfgMu.Lock()
	defer b.cfgMu.Unlock()
	next, err := b.withConfigLocked(key, value)
	if err != nil {
		return err
	}
	if err := b.meta.writable(); err != nil {
		return err
	}
	if err := b.meta.db.Set([]byte(prefixConfig+key), []byte(value), pebble.Sync); err != nil {
		return fmt.Errorf("broker: keep %s = %s: %w", key, value, err)
	}
	b.dyn.Store(next)
	b.log.Info().Str("key", key).Str("value", value).Msg("config changed (kept across restarts)")
	return nil
}

// withConfigLocked is the configuration in force with key set to value,
// or why it cannot be. Called with cfgMu held (or before Start).
func (b *Broker) withConfigLocked(key, value string) (*Config, error) {
	if !dynamicKeys[key] {
		keys := make([]string, 0, len(dynamicKeys))
		for k := range dynamicKeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("%w: %s cannot change at run time (restart with it in the config file); changeable: %s", ErrInvalidRequest, key, strings.Join(keys, ", "))
	}
	next := *b.c()
	var doc string
	switch key {
	case "long_poll_max":
		doc = fmt.Sprintf("%s = %q", key, value)
	default:
		doc = key + " = " + value
	}
	if _, err := toml.Decode(doc, &next); err != nil {
		return nil, fmt.Errorf("%w: %s = %s is not a value of its type: %v", ErrInvalidRequest, key, value, err)
	}
	if err := next.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	return &next, nil
}

// loadKeptConfig applies the run-time changes kept in the metadata store.
// A kept value the configuration no longer accepts is logged and dropped.
func (b *Broker) loadKeptConfig() error {
	return b.meta.scan(prefixConfig, func(k, v []byte) error {
		key, value := string(k[len(prefixConfig):]), string(v)
		next, err := b.withConfigLocked(key, value)
		if err != nil {
			b.log.Warn().Err(err).Str("key", key).Msg("dropping a kept config change")
			return b.meta.delete(string(k))
		}
		b.dyn.Store(next)
		b.log.Info().Str("key", key).Str("value", value).Msg("config change kept from an earlier run")
		return nil
	})
}

func (b *Broker) handleGetConfig(c *remoting.Conn, req *remoting.Command) {
	body, _ := json.Marshal(b.ConfigMap())
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	_ = c.Reply(resp)
}

func (b *Broker) handleSetConfig(c *remoting.Conn, req *remoting.Command) {
	var kv map[string]string
	if err := json.Unmarshal(req.Body, &kv); err != nil {
		b.reply(c, req, protocol.RespSystemError, "body must be a JSON object of key → value: "+err.Error())
		return
	}
	for k, v := range kv {
		if err := b.SetConfig(k, v); err != nil {
			b.replyErr(c, req, err)
			return
		}
	}
	b.reply(c, req, protocol.RespSuccess, "")
}
