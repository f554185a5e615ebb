package broker

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// Admin is the broker's administration: topics, groups, consumer
// offsets, dead letters, the configuration at run time, draining and the
// broker's status. The remoting admin codes (adminHandler), the HTTP API
// and tests use it; Broker.Admin returns it.
type Admin struct {
	cfg       *Config        // as started: the broker's names, data directory, flush mode
	conf      *runtimeConfig // the configuration in force (runtimeconfig.go)
	log       zerolog.Logger
	fs        vfs.FS
	startedAt time.Time
	host      func() netip.AddrPort // the advertised address (set at Start)

	clog         *commitlog.Log
	cq           *consumequeue.Store
	meta         *metaStore
	topics       *topicTable
	groups       *groupTable
	offsets      *offsetTable
	clients      *clientRegistry
	retryReaders *retryReaders
	metrics      *metrics
	repl         *replication
	registrar    *registrar

	drained   *atomic.Bool                      // the broker's drained flag (Broker.writable reads it)
	writable  func() string                     // why sends are refused, "" when they are accepted
	minOffset func(topic string, q int32) int64 // a queue's first offset the log still backs
}

func newAdmin(b *Broker) *Admin {
	return &Admin{
		cfg: &b.cfg, conf: b.conf, log: b.log, fs: b.fs, startedAt: b.startedAt,
		host: func() netip.AddrPort { return b.storeHost },
		clog: b.clog, cq: b.cq, meta: b.meta, topics: b.topics, groups: b.groups, offsets: b.offsets,
		clients: b.clients, retryReaders: b.retryReaders, metrics: b.metrics, repl: b.repl, registrar: b.registrar,
		drained: &b.drained, writable: b.writable, minOffset: b.reader.minOffset,
	}
}

// Admin is the broker's administration.
func (b *Broker) Admin() *Admin { return b.admin }

// CreateTopic creates or updates a topic.
func (a *Admin) CreateTopic(tc TopicConfig) error {
	if err := ValidateTopic(tc.TopicName); err != nil {
		return err
	}
	if err := checkTopicAdmin(a.groups, tc.TopicName, false); err != nil {
		return err
	}
	if err := a.meta.writable(); err != nil {
		return err
	}
	if tc.Perm == 0 {
		tc.Perm = protocol.PermRead | protocol.PermWrite
	}
	if tc.DedupWindowMs < 0 || tc.DedupWindowMs > maxDedupWindow.Milliseconds() {
		return fmt.Errorf("%w: dedup window %v must be between 0 (off) and %v", ErrInvalidRequest,
			time.Duration(tc.DedupWindowMs)*time.Millisecond, maxDedupWindow)
	}
	return a.topics.put(tc)
}

// DeleteTopic deletes a topic, its consume queues and its offsets. Its
// records stay in the commitlog until their segments expire.
func (a *Admin) DeleteTopic(name string) error {
	if err := checkTopicAdmin(a.groups, name, true); err != nil {
		return err
	}
	if err := a.meta.writable(); err != nil {
		return err
	}
	if err := a.topics.delete(name); err != nil {
		return err
	}
	if err := a.cq.DeleteTopic(name); err != nil {
		return err
	}
	a.clog.DeleteQueue(name)
	if group, ok := strings.CutPrefix(name, protocol.DLQTopicPrefix); ok {
		if err := a.meta.forgetResent(group); err != nil {
			return err
		}
	}
	return a.offsets.dropTopic(name)
}

// DeleteGroup deletes a group's config and offsets.
func (a *Admin) DeleteGroup(name string) error {
	if err := a.meta.writable(); err != nil {
		return err
	}
	if err := a.groups.delete(name); err != nil {
		return err
	}
	a.retryReaders.forget(name)
	return a.offsets.dropGroup(name)
}

// RuntimeInfo is the broker's status for admin tools.
type RuntimeInfo = protocol.BrokerRuntime

// Version is the Ferry version reported to admin tools.
var Version = "0.1.0"

// Runtime returns the broker's status.
func (a *Admin) Runtime() RuntimeInfo {
	why := a.writable()
	p, c := a.clients.counts()
	ri := RuntimeInfo{
		BrokerName: a.cfg.BrokerName, ClusterName: a.cfg.ClusterName, BrokerID: a.cfg.BrokerID, Addr: a.host().String(),
		Version: Version, Flush: a.cfg.Flush, Writable: why == "", NotWritableWhy: why,
		UptimeSeconds: time.Since(a.startedAt).Seconds(), CommitlogMin: a.clog.MinOffset(),
		CommitlogMax: a.clog.WrittenOffset(), FlushedOffset: a.clog.FlushedOffset(),
		Dispatched: a.cq.DispatchedOffset(), Topics: a.topics.count(), Groups: len(a.groups.all()),
		Producers: p, Consumers: c, MsgInTotal: a.metrics.inTotal(), MsgOutTotal: a.metrics.outTotal(),
		Replication: a.repl.Status(),
	}
	if u, err := a.fs.GetDiskUsage(a.cfg.DataDir); err == nil && u.TotalBytes > 0 {
		ri.DiskUsedRatio = float64(u.UsedBytes) / float64(u.TotalBytes)
	}
	return ri
}

// QueueStat is one queue's offsets.
type QueueStat = protocol.QueueStat

// TopicStats returns per-queue offsets of a topic.
func (a *Admin) TopicStats(topic string) ([]QueueStat, error) {
	tc, ok := a.topics.get(topic)
	if !ok {
		return nil, errors.Join(ErrTopicNotFound, errors.New("topic "+topic))
	}
	n := max(tc.ReadQueueNums, tc.WriteQueueNums)
	out := make([]QueueStat, n)
	for q := int32(0); q < n; q++ {
		s := QueueStat{QueueID: q, MinOffset: a.minOffset(topic, q), MaxOffset: a.cq.MaxOffset(topic, q)}
		if s.MaxOffset > 0 {
			if es, err := a.cq.Get(topic, q, s.MaxOffset-1, 1, nil); err == nil && len(es) == 1 {
				if rec, _, err := a.clog.ReadRecord(es[0].Offset, nil); err == nil {
					s.LastStoreMs = rec.StoreTimestamp
				}
			}
		}
		out[q] = s
	}
	return out, nil
}

// GroupLag is one queue's consumption by a group.
type GroupLag = protocol.QueueLag

// ConsumeStats returns a group's offsets and lag on every queue of the
// topics it subscribes to or has committed offsets on.
func (a *Admin) ConsumeStats(group string) []GroupLag {
	topics := map[string]bool{}
	for t := range a.clients.groupSubscriptions(group) {
		topics[t] = true
	}
	committed := a.offsets.forGroup(group)
	for t := range committed {
		topics[t] = true
	}
	var out []GroupLag
	for _, t := range sortedKeys(topics) {
		tc, ok := a.topics.get(t)
		if !ok {
			continue
		}
		for q := int32(0); q < tc.ReadQueueNums; q++ {
			maxOff := a.cq.MaxOffset(t, q)
			co, ok := committed[t][q]
			if !ok {
				co = 0
			}
			out = append(out, GroupLag{Topic: t, QueueID: q, BrokerOffset: maxOff, ConsumerOffset: co, Lag: max(0, maxOff-co)})
		}
	}
	return out
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
