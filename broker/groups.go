package broker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
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

type groupTable struct {
	meta *metaStore

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
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.groups[c.GroupName]; ok && old == c {
		return nil
	}
	if err := g.meta.putJSON(prefixGroup+c.GroupName, c); err != nil {
		return fmt.Errorf("broker: store group %q: %w", c.GroupName, err)
	}
	g.groups[c.GroupName] = c
	return nil
}

func (g *groupTable) delete(name string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.groups[name]; !ok {
		return fmt.Errorf("%w: %q", ErrGroupNotFound, name)
	}
	if err := g.meta.delete(prefixGroup + name); err != nil {
		return err
	}
	delete(g.groups, name)
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

// offsetTable holds committed consumer offsets in memory; flush writes the
// changed ones to the metadata store in one synced batch.
type offsetTable struct {
	meta *metaStore

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

func (t *offsetTable) set(group, topic string, queue int32, off int64) {
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

// deleteWhere forgets offsets matching fn (a deleted group or topic).
func (t *offsetTable) deleteWhere(fn func(group, topic string) bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.meta.db.NewBatch()
	defer b.Close()
	for id := range t.offsets {
		if fn(id.group, id.topic) {
			delete(t.offsets, id)
			delete(t.dirty, id)
			if err := b.Delete(offsetKey(id.group, id.topic, id.queue), nil); err != nil {
				return err
			}
		}
	}
	return t.meta.db.Apply(b, pebble.Sync)
}

// flush syncs the changed offsets to the metadata store.
func (t *offsetTable) flush() error {
	t.mu.Lock()
	if len(t.dirty) == 0 {
		t.mu.Unlock()
		return nil
	}
	b := t.meta.db.NewBatch()
	for id := range t.dirty {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(t.offsets[id]))
		if err := b.Set(offsetKey(id.group, id.topic, id.queue), v[:], nil); err != nil {
			t.mu.Unlock()
			b.Close()
			return err
		}
	}
	dirty := t.dirty
	t.dirty = make(map[offsetID]struct{})
	t.mu.Unlock()
	err := t.meta.db.Apply(b, pebble.Sync)
	b.Close()
	if err != nil {
		// Put them back so the next flush retries.
		t.mu.Lock()
		for id := range dirty {
			t.dirty[id] = struct{}{}
		}
		t.mu.Unlock()
		return fmt.Errorf("broker: persist consumer offsets: %w", err)
	}
	return nil
}
