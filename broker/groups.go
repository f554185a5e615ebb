package broker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ferrymq/ferry/protocol"
)

// GroupConfig is a consumer group's configuration (RocketMQ's
// SubscriptionGroupConfig, JSON field names as Java writes them).
type GroupConfig = protocol.SubscriptionGroupConfig

// DefaultGroupConfig is what auto-creation gives a new group.
func DefaultGroupConfig(name string, retryMax int32) GroupConfig {
	return GroupConfig{
		GroupName: name, ConsumeEnable: true, ConsumeFromMinEnable: true, ConsumeBroadcastEnable: true,
		RetryQueueNums: 1, RetryMaxTimes: retryMax, WhichBrokerWhenSlow: 1, NotifyConsumerIDs: true,
	}
}

// groupTable is the group configs, changed like topics (topics.go).
type groupTable struct {
	meta *metaStore
	mlog *metaLog

	mu     sync.RWMutex
	groups map[string]GroupConfig
}

func loadGroups(meta *metaStore) (*groupTable, error) {
	g := &groupTable{meta: meta, groups: make(map[string]GroupConfig)}
	err := meta.scan(prefixGroup, func(k, v []byte) error {
		var c GroupConfig
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("broker: group %q config: %w", k[len(prefixGroup):], err)
		}
		g.groups[c.GroupName] = c
		return nil
	})
	return g, err
}

func (g *groupTable) get(name string) (GroupConfig, bool) {
	g.mu.RLock()
	c, ok := g.groups[name]
	g.mu.RUnlock()
	return c, ok
}

func (g *groupTable) put(c GroupConfig) error {
	if err := ValidateGroup(c.GroupName); err != nil {
		return err
	}
	if c.RetryMaxTimes < -1 || c.RetryMaxTimes > 1000 {
		return fmt.Errorf("%w: retryMaxTimes %d must be -1 to 1000", ErrInvalidRequest, c.RetryMaxTimes)
	}
	if c.RetryQueueNums < 1 {
		c.RetryQueueNums = 1
	}
	if old, ok := g.get(c.GroupName); ok && old == c {
		return nil
	}
	if err := g.mlog.write([]metaChange{{Kind: metaGroupPut, Group: c}}, true); err != nil {
		return fmt.Errorf("broker: store group %q: %w", c.GroupName, err)
	}
	return nil
}

func (g *groupTable) delete(name string) error {
	if _, ok := g.get(name); !ok {
		return fmt.Errorf("%w: %q", ErrGroupNotFound, name)
	}
	if err := g.mlog.write([]metaChange{{Kind: metaGroupDelete, Name: name}}, true); err != nil {
		return fmt.Errorf("broker: delete group %q: %w", name, err)
	}
	return nil
}

// applyPut and applyDelete are the applier's (metalog.go).
func (g *groupTable) applyPut(c GroupConfig) {
	g.mu.Lock()
	g.groups[c.GroupName] = c
	g.mu.Unlock()
}

func (g *groupTable) applyDelete(name string) {
	g.mu.Lock()
	delete(g.groups, name)
	g.mu.Unlock()
}

// reload replaces the table with what the store holds.
func (g *groupTable) reload() error {
	n, err := loadGroups(g.meta)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.groups = n.groups
	g.mu.Unlock()
	return nil
}

func (g *groupTable) all() []GroupConfig {
	g.mu.RLock()
	out := make([]GroupConfig, 0, len(g.groups))
	for _, c := range g.groups {
		out = append(out, c)
	}
	g.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].GroupName < out[j].GroupName })
	return out
}

// offsetTable holds committed consumer offsets in memory. A commit
// request is stored at once as one metadata record (commit); offsets
// carried by pulls and lease acks are marked dirty and flush stores the
// changed ones as one record every OffsetFlushInterval and at shutdown.
// The applier writes them into the store. The broker's memory is ahead of
// the log, so the applier leaves it alone unless the broker follows
// another's log (follow): then the log is the only writer.
type offsetTable struct {
	meta   *metaStore
	mlog   *metaLog
	follow atomic.Bool

	mu      sync.Mutex
	offsets map[offsetID]int64
	dirty   map[offsetID]struct{}
}

type offsetID struct {
	group, topic string
	queue        int32
}

func loadOffsets(meta *metaStore) (*offsetTable, error) {
	t := &offsetTable{meta: meta, offsets: make(map[offsetID]int64), dirty: make(map[offsetID]struct{})}
	err := meta.scan(prefixOffset, func(k, v []byte) error {
		g, tp, q, ok := parseOffsetKey(k)
		if !ok || len(v) != 8 {
			return fmt.Errorf("broker: malformed offset entry %q", k)
		}
		t.offsets[offsetID{g, tp, q}] = int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return t, err
}

func (t *offsetTable) get(group, topic string, queue int32) (int64, bool) {
	t.mu.Lock()
	v, ok := t.offsets[offsetID{group, topic, queue}]
	t.mu.Unlock()
	return v, ok
}

// set takes an offset carried by a pull or a lease ack. A replica that
// follows another's log ignores it: it could never store it, and an entry
// it kept would hide the offsets the master commits (RocketMQ's slaves
// ignore a pull's commit offset too).
func (t *offsetTable) set(group, topic string, queue int32, off int64) {
	if t.follow.Load() {
		return
	}
	id := offsetID{group, topic, queue}
	t.mu.Lock()
	if cur, ok := t.offsets[id]; !ok || cur != off {
		t.offsets[id] = off
		t.dirty[id] = struct{}{}
	}
	t.mu.Unlock()
}

// forGroup returns the group's offsets by topic and queue.
func (t *offsetTable) forGroup(group string) map[string]map[int32]int64 {
	out := make(map[string]map[int32]int64)
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, v := range t.offsets {
		if id.group != group {
			continue
		}
		m := out[id.topic]
		if m == nil {
			m = make(map[int32]int64)
			out[id.topic] = m
		}
		m[id.queue] = v
	}
	return out
}

// groupsOf returns the groups that committed offsets of topic.
func (t *offsetTable) groupsOf(topic string) []string {
	seen := map[string]bool{}
	t.mu.Lock()
	for id := range t.offsets {
		if id.topic == topic {
			seen[id.group] = true
		}
	}
	t.mu.Unlock()
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// all returns every offset.
func (t *offsetTable) all() map[offsetID]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[offsetID]int64, len(t.offsets))
	for id, v := range t.offsets {
		out[id] = v
	}
	return out
}

// offsetCommit is one queue's offset in a commit request.
type offsetCommit struct {
	Topic  string
	Queue  int32
	Offset int64
}

// writable refuses offset changes on a replica that follows another's log.
func (t *offsetTable) writable() error {
	if t.follow.Load() {
		return fmt.Errorf("%w: consumer offsets are committed on the group's master, which this replica follows", ErrNotMaster)
	}
	return nil
}

// commit stores a commit request's offsets durably, as one record.
func (t *offsetTable) commit(group string, cs []offsetCommit) error {
	if len(cs) == 0 {
		return nil
	}
	if err := t.writable(); err != nil {
		return err
	}
	changes := make([]metaChange, len(cs))
	t.mu.Lock()
	for i, c := range cs {
		id := offsetID{group, c.Topic, c.Queue}
		t.offsets[id] = c.Offset
		delete(t.dirty, id)
		changes[i] = metaChange{Kind: metaOffsetSet, Offset: id, Value: c.Offset}
	}
	t.mu.Unlock()
	if err := t.mlog.write(changes, false); err != nil {
		t.markDirty(changes)
		return fmt.Errorf("broker: persist consumer offsets: %w", err)
	}
	return nil
}

func (t *offsetTable) markDirty(changes []metaChange) {
	t.mu.Lock()
	for _, c := range changes {
		if _, ok := t.offsets[c.Offset]; ok {
			t.dirty[c.Offset] = struct{}{}
		}
	}
	t.mu.Unlock()
}

// dropGroup and dropTopic forget the offsets of a deleted group or topic.
func (t *offsetTable) dropGroup(group string) error { return t.drop(metaDropGroup, group) }
func (t *offsetTable) dropTopic(topic string) error { return t.drop(metaDropTopic, topic) }

func (t *offsetTable) drop(by uint8, name string) error {
	t.dropMemory(by, name)
	return t.mlog.write([]metaChange{{Kind: metaOffsetsDrop, DropBy: by, Name: name}}, false)
}

func (t *offsetTable) dropMemory(by uint8, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.offsets {
		if by == metaDropGroup && id.group == name || by == metaDropTopic && id.topic == name {
			delete(t.offsets, id)
			delete(t.dirty, id)
		}
	}
}

// applySet and applyDrop are the applier's (metalog.go).
func (t *offsetTable) applySet(id offsetID, v int64) {
	if !t.follow.Load() {
		return
	}
	t.mu.Lock()
	if _, dirty := t.dirty[id]; !dirty {
		t.offsets[id] = v
	}
	t.mu.Unlock()
}

func (t *offsetTable) applyDrop(by uint8, name string) {
	if t.follow.Load() {
		t.dropMemory(by, name)
	}
}

// reload replaces the table with what the store holds.
func (t *offsetTable) reload() error {
	n, err := loadOffsets(t.meta)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.offsets, t.dirty = n.offsets, n.dirty
	t.mu.Unlock()
	return nil
}

// flush stores the changed offsets as one metadata record.
func (t *offsetTable) flush() error {
	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return nil
	}
	changes := make([]metaChange, 0, len(t.dirty))
	for id := range t.dirty {
		changes = append(changes, metaChange{Kind: metaOffsetSet, Offset: id, Value: t.offsets[id]})
	}
	t.dirty = make(map[offsetID]struct{})
	t.mu.Unlock()
	if err := t.mlog.write(changes, false); err != nil {
		// Put them back so the next flush retries.
		t.markDirty(changes)
		return fmt.Errorf("broker: persist consumer offsets: %w", err)
	}
	return nil
}
