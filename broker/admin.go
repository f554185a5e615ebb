package broker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

func (b *Broker) adminRoutes(timed func(int16, func(*remoting.Conn, *remoting.Command))) {
	timed(protocol.ReqUpdateAndCreateTopic, b.handleCreateTopic)
	timed(protocol.ReqDeleteTopicInBroker, b.handleDeleteTopic)
	timed(protocol.ReqGetAllTopicConfig, b.handleAllTopics)
	timed(protocol.ReqGetAllSubscriptionGroupConfig, b.handleAllGroups)
	timed(protocol.ReqUpdateAndCreateGroup, b.handleCreateGroup)
	timed(protocol.ReqDeleteSubscriptionGroup, b.handleDeleteGroup)
	timed(protocol.ReqGetBrokerRuntimeInfo, b.handleRuntimeInfo)
	timed(protocol.ReqGetTopicStatsInfo, b.handleTopicStats)
	timed(protocol.ReqGetConsumeStats, b.handleConsumeStats)
	timed(protocol.ReqGetConsumerConnList, b.handleConsumerConns)
}

func (b *Broker) replyJSON(c *remoting.Conn, req *remoting.Command, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	resp.Body = body
	_ = c.Reply(resp)
}

func (b *Broker) replyErr(c *remoting.Conn, req *remoting.Command, err error) {
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
	b.reply(c, req, code, err.Error())
}

// CreateTopic creates or updates a topic.
func (b *Broker) CreateTopic(tc TopicConfig) error {
	if err := ValidateTopic(tc.TopicName); err != nil {
		return err
	}
	if err := b.checkTopicAdmin(tc.TopicName, false); err != nil {
		return err
	}
	if err := b.meta.writable(); err != nil {
		return err
	}
	if tc.Perm == 0 {
		tc.Perm = protocol.PermRead | protocol.PermWrite
	}
	if tc.DedupWindowMs < 0 || tc.DedupWindowMs > maxDedupWindow.Milliseconds() {
		return fmt.Errorf("%w: dedup window %v must be between 0 (off) and %v", ErrInvalidRequest,
			time.Duration(tc.DedupWindowMs)*time.Millisecond, maxDedupWindow)
	}
	return b.topics.put(tc)
}

// DeleteTopic deletes a topic, its consume queues and its offsets. Its
// records stay in the commitlog until their segments expire.
func (b *Broker) DeleteTopic(name string) error {
	if err := b.checkTopicAdmin(name, true); err != nil {
		return err
	}
	if err := b.meta.writable(); err != nil {
		return err
	}
	if err := b.topics.delete(name); err != nil {
		return err
	}
	if err := b.cq.DeleteTopic(name); err != nil {
		return err
	}
	b.clog.DeleteQueue(name)
	if group, ok := strings.CutPrefix(name, protocol.DLQTopicPrefix); ok {
		if err := b.meta.forgetResent(group); err != nil {
			return err
		}
	}
	return b.offsets.dropTopic(name)
}

func (b *Broker) handleCreateTopic(c *remoting.Conn, req *remoting.Command) {
	var tc TopicConfig
	var err error
	if tc.TopicName, err = req.String("topic"); err != nil {
		b.replyErr(c, req, err)
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
		b.replyErr(c, req, err)
		return
	}
	tc.TopicFilterType = req.StringOr("topicFilterType", remoting.TopicFilterSingleTag)
	tc.Order = req.StringOr("order", "false") == "true"
	// Ferry's own field; RocketMQ's tools leave it out, which keeps it.
	if s, ok := req.ExtFields["dedupWindow"]; ok {
		if tc.DedupWindowMs, err = strconv.ParseInt(s, 10, 64); err != nil {
			b.reply(c, req, protocol.RespSystemError, "dedupWindow "+strconv.Quote(s)+" is not a number of milliseconds")
			return
		}
	} else if cur, ok := b.topics.get(tc.TopicName); ok {
		tc.DedupWindowMs = cur.DedupWindowMs
	}
	if err := b.CreateTopic(tc); err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

func (b *Broker) handleDeleteTopic(c *remoting.Conn, req *remoting.Command) {
	name, err := req.String("topic")
	if err == nil {
		err = b.DeleteTopic(name)
	}
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

func (b *Broker) handleAllTopics(c *remoting.Conn, req *remoting.Command) {
	m, v := b.topics.snapshot()
	b.replyJSON(c, req, remoting.TopicConfigSerializeWrapper{TopicConfigTable: m, DataVersion: v})
}

func (b *Broker) handleAllGroups(c *remoting.Conn, req *remoting.Command) {
	table := map[string]GroupConfig{}
	for _, g := range b.groups.all() {
		table[g.GroupName] = g
	}
	b.replyJSON(c, req, map[string]any{"subscriptionGroupTable": table, "dataVersion": remoting.DataVersion{Timestamp: time.Now().UnixMilli()}})
}

func (b *Broker) handleCreateGroup(c *remoting.Conn, req *remoting.Command) {
	var gc GroupConfig
	if err := json.Unmarshal(req.Body, &gc); err != nil {
		b.reply(c, req, protocol.RespSystemError, "malformed group config: "+err.Error())
		return
	}
	if err := b.PutGroup(gc); err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

// DeleteGroup deletes a group's config and offsets.
func (b *Broker) DeleteGroup(name string) error {
	if err := b.meta.writable(); err != nil {
		return err
	}
	if err := b.groups.delete(name); err != nil {
		return err
	}
	b.retryReaders.forget(name)
	return b.offsets.dropGroup(name)
}

func (b *Broker) handleDeleteGroup(c *remoting.Conn, req *remoting.Command) {
	name, err := req.String("groupName")
	if err == nil {
		err = b.DeleteGroup(name)
	}
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.reply(c, req, protocol.RespSuccess, "")
}

// RuntimeInfo is the broker's status for admin tools.
type RuntimeInfo = protocol.BrokerRuntime

// Version is the Ferry version reported to admin tools.
var Version = "0.1.0"

// Runtime returns the broker's status.
func (b *Broker) Runtime() RuntimeInfo {
	why := b.writable()
	p, c := b.clients.counts()
	ri := RuntimeInfo{
		BrokerName: b.cfg.BrokerName, ClusterName: b.cfg.ClusterName, BrokerID: b.cfg.BrokerID, Addr: b.addr,
		Version: Version, Flush: b.cfg.Flush, Writable: why == "", NotWritableWhy: why,
		UptimeSeconds: time.Since(b.startedAt).Seconds(), CommitlogMin: b.clog.MinOffset(),
		CommitlogMax: b.clog.WrittenOffset(), FlushedOffset: b.clog.FlushedOffset(),
		Dispatched: b.cq.DispatchedOffset(), Topics: b.topics.count(), Groups: len(b.groups.all()),
		Producers: p, Consumers: c, MsgInTotal: b.metrics.inTotal(), MsgOutTotal: b.metrics.outTotal(),
		Replication: b.repl.Status(),
	}
	if u, err := b.fs.GetDiskUsage(b.cfg.DataDir); err == nil && u.TotalBytes > 0 {
		ri.DiskUsedRatio = float64(u.UsedBytes) / float64(u.TotalBytes)
	}
	return ri
}

func (b *Broker) handleRuntimeInfo(c *remoting.Conn, req *remoting.Command) {
	b.replyJSON(c, req, b.Runtime())
}

// QueueStat is one queue's offsets.
type QueueStat = protocol.QueueStat

// TopicStats returns per-queue offsets of a topic.
func (b *Broker) TopicStats(topic string) ([]QueueStat, error) {
	tc, ok := b.topics.get(topic)
	if !ok {
		return nil, errors.Join(ErrTopicNotFound, errors.New("topic "+topic))
	}
	n := max(tc.ReadQueueNums, tc.WriteQueueNums)
	out := make([]QueueStat, n)
	for q := int32(0); q < n; q++ {
		s := QueueStat{QueueID: q, MinOffset: b.reader.minOffset(topic, q), MaxOffset: b.cq.MaxOffset(topic, q)}
		if s.MaxOffset > 0 {
			if es, err := b.cq.Get(topic, q, s.MaxOffset-1, 1, nil); err == nil && len(es) == 1 {
				if rec, _, err := b.clog.ReadRecord(es[0].Offset, nil); err == nil {
					s.LastStoreMs = rec.StoreTimestamp
				}
			}
		}
		out[q] = s
	}
	return out, nil
}

func (b *Broker) handleTopicStats(c *remoting.Conn, req *remoting.Command) {
	topic, err := req.String("topic")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	st, err := b.TopicStats(topic)
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.replyJSON(c, req, protocol.TopicStats{Topic: topic, Queues: st})
}

// GroupLag is one queue's consumption by a group.
type GroupLag = protocol.QueueLag

// ConsumeStats returns a group's offsets and lag on every queue of the
// topics it subscribes to or has committed offsets on.
func (b *Broker) ConsumeStats(group string) []GroupLag {
	topics := map[string]bool{}
	for t := range b.clients.groupSubscriptions(group) {
		topics[t] = true
	}
	committed := b.offsets.forGroup(group)
	for t := range committed {
		topics[t] = true
	}
	var out []GroupLag
	for _, t := range sortedKeys(topics) {
		tc, ok := b.topics.get(t)
		if !ok {
			continue
		}
		for q := int32(0); q < tc.ReadQueueNums; q++ {
			maxOff := b.cq.MaxOffset(t, q)
			co, ok := committed[t][q]
			if !ok {
				co = 0
			}
			out = append(out, GroupLag{Topic: t, QueueID: q, BrokerOffset: maxOff, ConsumerOffset: co, Lag: max(0, maxOff-co)})
		}
	}
	return out
}

func (b *Broker) handleConsumeStats(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.replyJSON(c, req, protocol.ConsumeStats{Group: group, Queues: b.ConsumeStats(group)})
}

func (b *Broker) handleConsumerConns(c *remoting.Conn, req *remoting.Command) {
	group, err := req.String("consumerGroup")
	if err != nil {
		b.replyErr(c, req, err)
		return
	}
	b.replyJSON(c, req, map[string]any{"group": group, "clients": b.clients.clients(group), "subscriptions": b.clients.groupSubscriptions(group)})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	hotOnce sync.Once
	hot     int64
)

// hotBytes is how far back from the log's end data counts as in memory:
// 40% of physical memory, as RocketMQ's accessMessageInMemoryMaxRatio.
func hotBytes() int64 {
	hotOnce.Do(func() {
		hot = 4 << 30
		f, err := os.Open("/proc/meminfo")
		if err != nil {
			return
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					hot = kb * 1024 * 4 / 10
				}
			}
		}
	})
	return hot
}
