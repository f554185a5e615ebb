package broker

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/delay"
)

// Snapshots, retention and rebuilds of the replicated metadata
// (metalog.go): a snapshot puts every piece of it back into the log before
// retention deletes the segment holding its last change, and a rebuild
// replays the log into an empty store.

// snapshot writes every replicated piece of metadata into the log, as
// records flagged as a snapshot, and makes them durable.
func (m *metaLog) snapshot() error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	// Every record appended before is applied, so the tables hold it.
	if err := m.waitApplied(m.lastEnd.Load()); err != nil {
		return err
	}
	var changes []metaChange
	topics, _ := m.topics.snapshot()
	for _, c := range topics {
		changes = append(changes, metaChange{Kind: metaTopicPut, Topic: c})
	}
	for _, c := range m.groups.all() {
		changes = append(changes, metaChange{Kind: metaGroupPut, Group: c})
	}
	for id, v := range m.offsets.all() {
		changes = append(changes, metaChange{Kind: metaOffsetSet, Offset: id, Value: v})
	}
	if p, found, err := delay.LoadProgress(m.db, m.levels); err != nil {
		return err
	} else if found {
		changes = append(changes, metaChange{Kind: metaDelayProgres, Delay: p})
	}
	err := (&metaStore{db: m.db}).scan(producerEpochPrefix, func(k, v []byte) error {
		if len(v) == 4 {
			changes = append(changes, metaChange{Kind: metaProducerEpoch, Name: string(k[len(producerEpochPrefix):]),
				Epoch: int32(binary.BigEndian.Uint32(v))})
		}
		return nil
	})
	if err != nil {
		return err
	}
	first := int64(-1)
	for len(changes) > 0 {
		n, size := 0, 0
		for n < len(changes) && (n == 0 || size < metaSnapChunk) {
			size += metaChangeSize(&changes[n])
			n++
		}
		res, err := m.appendLocked(true, changes[:n])
		if err != nil {
			return err
		}
		if first < 0 {
			first = res.Offset
		}
		changes = changes[n:]
	}
	if err := m.durable(); err != nil {
		return err
	}
	if first >= 0 {
		m.lastSnap.Store(first)
	}
	return nil
}

// metaChangeSize estimates a change's encoded size.
func metaChangeSize(c *metaChange) int {
	switch c.Kind {
	case metaTopicPut, metaGroupPut:
		return 512
	case metaOffsetSet:
		return 21 + len(c.Offset.group) + len(c.Offset.topic)
	case metaDelayProgres:
		return 23 + 8*len(c.Delay.Levels)
	}
	return 6 + len(c.Name)
}

// beforeRetention makes sure the log kept from cut on holds all metadata:
// it writes a snapshot unless one starts at or after cut.
func (m *metaLog) beforeRetention(cut int64) error {
	if m.lastSnap.Load() >= cut {
		return nil
	}
	return m.snapshot()
}

// rebuild forgets the replicated metadata in the store and applies the
// kept log again from its oldest segment up to the dispatch limit, then
// reloads the tables. It is for a replica whose log was truncated; the
// broker must take no metadata writes meanwhile.
func (m *metaLog) rebuild() error {
	m.amu.Lock()
	defer m.amu.Unlock()
	b := m.db.NewBatch()
	defer b.Close()
	// Producer epochs (pe/) stay: a data directory from before they were
	// metadata records has them only in the store, and an epoch too high
	// fences no more than a newer instance would.
	for _, p := range []string{prefixTopic, prefixGroup, prefixOffset, "d/level/"} {
		if err := b.DeleteRange([]byte(p), prefixEnd(p), nil); err != nil {
			return err
		}
	}
	if err := b.Delete([]byte("d/timer"), nil); err != nil {
		return err
	}
	if err := b.Delete([]byte(keyMetaApplied), nil); err != nil {
		return err
	}
	if err := m.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("broker: clear metadata: %w", err)
	}
	m.pos = m.clog.MinOffset()
	topics, groups, offsets := m.topics, m.groups, m.offsets
	m.topics = nil // catch-up does not touch the tables; they are reloaded below
	err := m.catchUpLocked()
	m.topics = topics
	if err != nil {
		return err
	}
	if err := topics.reload(); err != nil {
		return err
	}
	if err := groups.reload(); err != nil {
		return err
	}
	return offsets.reload()
}

// RebuildMetadata rebuilds the metadata store's replicated part (topics,
// groups, consumer offsets, delay progress) from the kept commitlog and
// reloads it; see metaLog.rebuild.
func (b *Broker) RebuildMetadata() error { return b.metaLog.rebuild() }

// FollowMetadata says whether this broker follows another broker's log (a
// slave): then the consumer offsets it serves come from the log alone, as
// the applier applies them. A broker that takes commits itself (the
// default) serves the offsets it was sent, which are never behind its
// log.
//
// A broker that starts following drops what it took and did not store
// (offsets carried by pulls since its last flush, which were never the
// group's committed offsets) and serves what its applier stored, so
// nothing of its own hides the offsets the log brings.
func (b *Broker) FollowMetadata(on bool) {
	if !on {
		b.offsets.follow.Store(false)
		return
	}
	if b.offsets.follow.Swap(true) {
		return
	}
	b.metaLog.amu.Lock() // the store and the table agree while no record is applied
	err := b.offsets.reload()
	b.metaLog.amu.Unlock()
	if err != nil {
		b.log.Error().Err(err).Msg("reload consumer offsets from the metadata store")
	}
}
