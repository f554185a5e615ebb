package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
)

// Metadata travels with the data. The broker's replicated metadata —
// topic and group configs, consumer offsets, delay progress — is changed
// by appending a metadata record (metarecord.go) to the shared commitlog,
// and only the applier writes it into the metadata store. Any broker that
// replays the same log (a slave fed the master's log, a broker opened on a
// copy of a commitlog directory, a broker rebuilding after a truncation)
// ends with the same metadata.
//
// Write path: the writer appends the record and makes it durable (the
// commitlog's own group commit in sync-flush mode, a forced flush round in
// async mode: losing a config change or an offset commit would redeliver
// or lose messages, DESIGN §3 invariant 6). A topic or group change then
// waits until the applier has applied it, so the next read sees it.
// Consumer offsets are kept in memory by the writer and need no wait.
//
// Apply path: the applier is a dispatch listener (consumequeue's listener
// durability contract). It is fed records in log order, never past the
// dispatch limit (the flushed end in sync-flush mode, the commit point on
// a replicated group), so it never applies what a crash or a failover
// could take back. It writes each metadata record's changes and the log
// position it reached (key m/applied) in one pebble batch; records below
// that position are skipped, so a replay applies nothing twice. Its Sync
// persists the position with a synced write, and the checkpoint never
// passes it. At open the applier first catches up from m/applied to the
// dispatch limit by itself, so the store is current before anything reads
// it, whatever the consume queues' checkpoint says.
//
// Which metadata is replicated: topic configs (t/), group configs (g/),
// consumer offsets (o/), delay-level and timer progress (d/level/,
// d/timer), the epochs granted to idempotent producers (pe/). Per replica and not in the log: run-time config changes (c/,
// a broker's own settings), the receipt-handle key (k/, HTTP leases are
// held in memory and end with the process), resent-dead-letter marks
// (r/, an operator's record of what this broker resent), the drained
// flag (memory), and every index derived from the log (key index, timer
// index, dedup windows, producer and transaction state), which each
// replica rebuilds from its own log (and keeps up to date from it as the
// log is dispatched: eos_replica.go).
//
// Retention: a replica that starts from the oldest kept segment must find
// all metadata in the log. Before retention deletes segments it writes a
// snapshot — every topic, group, offset and the delay progress as
// ordinary changes flagged as a snapshot — unless one was written at or
// after the cut; the snapshot lands in the active segment, which retention
// never deletes. So the kept log always holds a complete snapshot followed
// by every change after it. An existing data directory (metadata only in
// pebble, no m/applied key) gets a snapshot at its first start.

// Keys of the metadata store owned by the applier (part of the format).
const (
	keyMetaApplied = "m/applied" // log offset below which every metadata record is applied, int64 BE
	metaSnapChunk  = 256 << 10   // a snapshot record's body stays under this many bytes
	metaApplyWait  = 10 * time.Second
)

// metaLog is the writer and the applier of metadata records.
type metaLog struct {
	clog   *commitlog.Log
	db     *pebble.DB
	log    zerolog.Logger
	levels int // delay levels, for snapshots
	async  bool
	host   func() netip.AddrPort // BORNHOST and STOREHOST of the records

	topics  *topicTable
	groups  *groupTable
	offsets *offsetTable
	// onTopic, if set, hears of every topic put and delete applied.
	onTopic func(kind uint8, name string)
	// onProducerEpoch, if set, hears of every producer epoch applied.
	onProducerEpoch func(pid string, epoch int32)

	// wmu: writers hold it shared while they append, a snapshot holds it
	// exclusively, so no record is appended while a snapshot is taken.
	wmu      sync.RWMutex
	lastEnd  atomic.Int64 // end of the last metadata record appended
	lastSnap atomic.Int64 // offset of the last snapshot's first record, -1 none

	// amu serialises applying: Dispatch, Sync, catch-up and rebuild.
	amu  sync.Mutex
	pos  int64 // every metadata record below it is applied
	rbuf []byte
	sbuf []byte

	// The position the applier was fed to, for writers waiting on it.
	seenMu sync.Mutex
	seen   int64
	seenCh chan struct{}
}

var _ consumequeue.Listener = (*metaLog)(nil)

// openMetaLog prepares the applier over an open store and log: it reads
// the applied position and catches up to the dispatch limit. Tables are
// loaded after it. snapshot says the data directory predates metadata
// records (its store has metadata and no position): write a snapshot once
// the broker is open.
func openMetaLog(clog *commitlog.Log, db *pebble.DB, levels int, log zerolog.Logger) (m *metaLog, snapshot bool, err error) {
	m = &metaLog{clog: clog, db: db, log: log, levels: levels, async: clog.Options().Flush != commitlog.FlushSync, seenCh: make(chan struct{})}
	m.lastSnap.Store(-1)
	pos, ok, err := readInt64(db, keyMetaApplied)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		has, err := hasReplicatedMeta(db)
		if err != nil {
			return nil, false, err
		}
		if has {
			// An upgrade: the log holds no metadata records yet.
			pos, snapshot = clog.WrittenOffset(), true
		} else {
			pos = clog.MinOffset()
		}
	}
	m.pos = pos
	if err := m.catchUp(); err != nil {
		return nil, false, err
	}
	return m, snapshot, nil
}

// hasReplicatedMeta reports whether the store holds any replicated
// metadata.
func hasReplicatedMeta(db *pebble.DB) (bool, error) {
	for _, p := range []string{prefixTopic, prefixGroup, prefixOffset, "d/level/"} {
		if hasPrefix(db, p) {
			return true, nil
		}
	}
	_, closer, err := db.Get([]byte("d/timer"))
	if err == nil {
		closer.Close()
		return true, nil
	}
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	return false, err
}

func readInt64(db *pebble.DB, k string) (int64, bool, error) {
	v, closer, err := db.Get([]byte(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("broker: read %s: %w", k, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("broker: %s: malformed value", k)
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// catchUp applies, by itself, every metadata record from the applied
// position to the dispatch limit (tables are not updated: callers load
// them afterwards).
func (m *metaLog) catchUp() error {
	m.amu.Lock()
	defer m.amu.Unlock()
	return m.catchUpLocked()
}

func (m *metaLog) catchUpLocked() error {
	limit := m.clog.VisibleOffset()
	if lo := m.clog.MinOffset(); m.pos < lo {
		if m.pos > 0 {
			m.log.Warn().Int64("offset", m.pos).Int64("min_offset", lo).Msg("metadata: log records were deleted before they were applied; applying from the oldest kept")
		}
		m.pos = lo
	}
	if m.pos >= limit {
		return nil
	}
	from := m.pos
	var changes []metaChange
	end, err := m.clog.Scan(m.pos, limit, &m.sbuf, func(off int64, b []byte) error {
		rec, err := protocol.Decode(b)
		if err != nil {
			return err
		}
		if string(rec.Topic) != protocol.MetaTopic {
			return nil
		}
		mr, err := decodeMetaRecord(rec.Body)
		if err != nil {
			m.log.Error().Err(err).Int64("offset", off).Msg("metadata: skipping a record this broker cannot read")
			return nil
		}
		changes = append(changes, mr.Changes...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: replay metadata from the log at %d: %w", end, err)
	}
	if err := m.commitLocked(changes, end, pebble.Sync); err != nil {
		return err
	}
	m.log.Info().Int64("from", from).Int64("to", end).Int("changes", len(changes)).Msg("metadata: caught up with the log")
	return nil
}

// commitLocked writes changes and the new position in one batch, then
// (when tables are attached) applies them to the tables.
func (m *metaLog) commitLocked(changes []metaChange, pos int64, opts *pebble.WriteOptions) error {
	b := m.db.NewIndexedBatch()
	defer b.Close()
	for i := range changes {
		if err := applyMetaChange(b, &changes[i]); err != nil {
			return fmt.Errorf("broker: apply metadata: %w", err)
		}
	}
	if err := b.Set([]byte(keyMetaApplied), binary.BigEndian.AppendUint64(nil, uint64(pos)), nil); err != nil {
		return err
	}
	if err := m.db.Apply(b, opts); err != nil {
		return fmt.Errorf("broker: apply metadata: %w", err)
	}
	m.pos = pos
	if m.topics != nil {
		for i := range changes {
			m.applyToTables(&changes[i])
		}
	}
	return nil
}

// applyMetaChange writes one change into b (an indexed batch: a drop
// sees offsets set earlier in the same batch).
func applyMetaChange(b *pebble.Batch, c *metaChange) error {
	switch c.Kind {
	case metaTopicPut:
		v, err := json.Marshal(c.Topic)
		if err != nil {
			return err
		}
		return b.Set([]byte(prefixTopic+c.Topic.TopicName), v, nil)
	case metaTopicDelete:
		return b.Delete([]byte(prefixTopic+c.Name), nil)
	case metaGroupPut:
		v, err := json.Marshal(c.Group)
		if err != nil {
			return err
		}
		return b.Set([]byte(prefixGroup+c.Group.GroupName), v, nil)
	case metaGroupDelete:
		return b.Delete([]byte(prefixGroup+c.Name), nil)
	case metaOffsetSet:
		return b.Set(offsetKey(c.Offset.group, c.Offset.topic, c.Offset.queue), binary.BigEndian.AppendUint64(nil, uint64(c.Value)), nil)
	case metaOffsetsDrop:
		if c.DropBy == metaDropGroup {
			lo := []byte(prefixOffset + c.Name + "\x00")
			return b.DeleteRange(lo, prefixEnd(string(lo)), nil)
		}
		it, err := b.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixOffset), UpperBound: prefixEnd(prefixOffset)})
		if err != nil {
			return err
		}
		var del [][]byte
		for it.First(); it.Valid(); it.Next() {
			if _, topic, _, ok := parseOffsetKey(it.Key()); ok && topic == c.Name {
				del = append(del, append([]byte(nil), it.Key()...))
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
		for _, k := range del {
			if err := b.Delete(k, nil); err != nil {
				return err
			}
		}
		return nil
	case metaDelayProgres:
		return delay.PutProgress(b, c.Delay)
	case metaProducerEpoch:
		return b.Set([]byte(producerEpochPrefix+c.Name), binary.BigEndian.AppendUint32(nil, uint32(c.Epoch)), nil)
	}
	return fmt.Errorf("unknown change kind %d", c.Kind)
}

// applyToTables makes a change visible to readers.
func (m *metaLog) applyToTables(c *metaChange) {
	switch c.Kind {
	case metaTopicPut:
		m.topics.applyPut(c.Topic)
		if m.onTopic != nil {
			m.onTopic(c.Kind, c.Topic.TopicName)
		}
	case metaTopicDelete:
		m.topics.applyDelete(c.Name)
		if m.onTopic != nil {
			m.onTopic(c.Kind, c.Name)
		}
	case metaGroupPut:
		m.groups.applyPut(c.Group)
	case metaGroupDelete:
		m.groups.applyDelete(c.Name)
	case metaOffsetSet:
		m.offsets.applySet(c.Offset, c.Value)
	case metaOffsetsDrop:
		m.offsets.applyDrop(c.DropBy, c.Name)
	case metaProducerEpoch:
		if m.onProducerEpoch != nil {
			m.onProducerEpoch(c.Name, c.Epoch)
		}
	}
}

// Dispatch applies the batch's metadata records (the listener side).
func (m *metaLog) Dispatch(batch []consumequeue.Record) error {
	if len(batch) == 0 {
		return nil
	}
	m.amu.Lock()
	defer m.amu.Unlock()
	var changes []metaChange
	found := false
	for i := range batch {
		r := &batch[i]
		if r.Offset < m.pos || string(r.Topic) != protocol.MetaTopic {
			continue
		}
		rec, buf, err := m.clog.ReadRecord(r.Offset, m.rbuf)
		m.rbuf = buf
		if err != nil {
			return fmt.Errorf("broker: read metadata record at %d: %w", r.Offset, err)
		}
		found = true
		mr, err := decodeMetaRecord(rec.Body)
		if err != nil {
			m.log.Error().Err(err).Int64("offset", r.Offset).Msg("metadata: skipping a record this broker cannot read")
			continue
		}
		changes = append(changes, mr.Changes...)
	}
	last := batch[len(batch)-1]
	end := last.Offset + int64(last.Size)
	if found {
		if err := m.commitLocked(changes, max(end, m.pos), pebble.NoSync); err != nil {
			return err
		}
	} else if end > m.pos {
		// Persisted by the next Sync or metadata record.
		m.pos = end
	}
	m.advanceSeen(m.pos)
	return nil
}

// Sync makes the applied position durable (with every batch before it).
func (m *metaLog) Sync() error {
	m.amu.Lock()
	pos := m.pos
	m.amu.Unlock()
	return m.db.Set([]byte(keyMetaApplied), binary.BigEndian.AppendUint64(nil, uint64(pos)), pebble.Sync)
}

func (m *metaLog) advanceSeen(pos int64) {
	m.seenMu.Lock()
	if pos > m.seen {
		m.seen = pos
		close(m.seenCh)
		m.seenCh = make(chan struct{})
	}
	m.seenMu.Unlock()
}

// waitApplied waits until the applier got past end.
func (m *metaLog) waitApplied(end int64) error {
	t := time.NewTimer(metaApplyWait)
	defer t.Stop()
	for {
		m.seenMu.Lock()
		seen, ch := m.seen, m.seenCh
		m.seenMu.Unlock()
		if seen >= end {
			return nil
		}
		// catch-up at open leaves seen at zero: the position counts too.
		m.amu.Lock()
		pos := m.pos
		m.amu.Unlock()
		if pos >= end {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("broker: metadata change at log offset %d is stored but not applied after %v (dispatch stopped or behind)", end, metaApplyWait)
		}
	}
}

// append stores one record (under wmu, shared or exclusive, held by the
// caller) and returns its end.
func (m *metaLog) appendLocked(snapshot bool, changes []metaChange) (commitlog.AppendResult, error) {
	body, err := encodeMetaRecord(nil, snapshot, changes)
	if err != nil {
		return commitlog.AppendResult{}, err
	}
	msg := commitlog.Message{Topic: protocol.MetaTopic, Body: body, BornTimestamp: time.Now().UnixMilli()}
	if m.host != nil {
		msg.BornHost = m.host()
		msg.StoreHost = msg.BornHost
	}
	res, err := m.clog.Append([]commitlog.Message{msg}, nil)
	if err != nil {
		return commitlog.AppendResult{}, fmt.Errorf("broker: store metadata change: %w", err)
	}
	for {
		cur := m.lastEnd.Load()
		if res[0].End() <= cur || m.lastEnd.CompareAndSwap(cur, res[0].End()) {
			break
		}
	}
	return res[0], nil
}

// durable makes everything appended so far durable (async-flush mode:
// a flush round; sync mode: Append already waited for it).
func (m *metaLog) durable() error {
	if !m.async {
		return nil
	}
	if err := m.clog.Sync(); err != nil {
		return fmt.Errorf("broker: flush metadata change: %w", err)
	}
	return nil
}

// write stores changes as one record, durably; apply says wait until the
// applier has applied it.
func (m *metaLog) write(changes []metaChange, apply bool) error {
	m.wmu.RLock()
	res, err := m.appendLocked(false, changes)
	m.wmu.RUnlock()
	if err != nil {
		return err
	}
	if err := m.durable(); err != nil {
		return err
	}
	if apply {
		return m.waitApplied(res.End())
	}
	return nil
}

// writeUnflushed stores changes as one record and waits until it is
// applied, but not until it is durable: the log's own flush carries it.
// It is for what a client's next request creates again if a power loss
// drops it (a group's auto-created config and retry topic).
func (m *metaLog) writeUnflushed(changes []metaChange) error {
	m.wmu.RLock()
	res, err := m.appendLocked(false, changes)
	m.wmu.RUnlock()
	if err != nil {
		return err
	}
	return m.waitApplied(res.End())
}
