package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
)

// Producer state and dedup keys on every replica. Both are derived from
// the commitlog (idempotent.go, dedup.go): a master records its own sends
// as it appends them, and every broker — master, slave, standalone — also
// applies the log to them as it is dispatched (producerApplier, a
// dispatch listener), so a slave's state follows its master's log, never
// past the commit point (the dispatch limit). Applying what a broker
// recorded itself changes nothing (idempotence.Table.Apply, and dedup keys
// already held are skipped).
//
// Epochs granted by INIT_PRODUCER_ID are metadata records (kind 8,
// metarecord.go): the grant is answered once the record is applied, which
// on a replica group means committed, and every replica raises its table
// to it as its metadata applier applies it. An older instance stays
// fenced after a failover even if no message carries the newer epoch.
//
// A new master answers its first idempotent, dedup or INIT_PRODUCER_ID
// request only once every listener took the log it held when it was
// elected (producerStateReady): what the old master stored is then in its
// table and its dedup keys.
//
// A replica whose log is cut back (it rejoins under a new master that
// never had its tail) rebuilds the producer table from a snapshot at or
// below the applied position plus the log up to it, and drops the dedup
// keys of the messages cut (idempotentProducers.rebuild).

// producerStateWait bounds how long a new master's idempotent or dedup
// send waits for the replicated state to be applied.
const producerStateWait = 5 * time.Second

// snapshotCommitWait bounds how long a master's producer snapshot waits
// for the commit point to reach the log's end (idempotent sends wait
// meanwhile).
const snapshotCommitWait = time.Second

// producerApplier applies dispatched records to the producer table and
// the dedup keys.
type producerApplier struct {
	p *idempotentProducers
	// mu serialises Dispatch, the load at open and rebuilds.
	mu  sync.Mutex
	pos int64 // every record below it is in the table; guarded by mu
}

var _ consumequeue.Listener = (*producerApplier)(nil)

// Dispatch applies the batch's records at or past pos. Before the table
// is loaded it takes nothing: the load replays the log to its end, past
// every record dispatched before it.
func (a *producerApplier) Dispatch(batch []consumequeue.Record) error {
	if len(batch) == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.p
	s.mu.Lock()
	loaded := s.tab != nil
	s.mu.Unlock()
	if !loaded {
		return nil
	}
	now := time.Now()
	full := false
	for i := range batch {
		r := &batch[i]
		if r.Offset < a.pos {
			continue
		}
		rec := protocol.Record{Topic: r.Topic, QueueID: r.QueueID, QueueOffset: r.QueueOffset,
			StoreTimestamp: r.StoreTimestamp, Properties: r.Properties}
		full = s.dedup.replay(&rec, r.Offset, now) || full
		f, topic, ok := producerRecord(&rec)
		if !ok {
			continue
		}
		s.mu.Lock()
		s.tab.Apply(f.pid, f.epoch, idempotence.Queue{Topic: topic, ID: rec.QueueID}, f.seq,
			idempotence.Stored{CommitlogOffset: r.Offset, QueueOffset: rec.QueueOffset}, rec.StoreTimestamp)
		s.mu.Unlock()
	}
	last := batch[len(batch)-1]
	a.pos = max(a.pos, last.Offset+int64(last.Size))
	if full {
		return s.dedup.flush()
	}
	return nil
}

// Sync has nothing to make durable: a restart rebuilds the table and the
// keys from the last producer snapshot and the log after it.
func (a *producerApplier) Sync() error { return nil }

// applied is the position the applier reached.
func (a *producerApplier) applied() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pos
}

// producerRecord reads an idempotent producer's fields from a stored
// record; ok is false for plain messages and for copies the broker stored
// again itself (retry, dead-letter and system topics).
func producerRecord(rec *protocol.Record) (producerFields, string, bool) {
	topic := string(rec.Topic)
	if protocol.IsReservedTopic(topic) || strings.HasPrefix(topic, protocol.RetryTopicPrefix) || strings.HasPrefix(topic, protocol.DLQTopicPrefix) {
		return producerFields{}, "", false
	}
	f, ok, err := parseProducerFields(rec.Properties)
	if !ok || err != nil {
		return producerFields{}, "", false
	}
	return f, topic, true
}

// producerStateReady waits, on a newly elected master, until the log it
// held at its election is applied to the producer table and the dedup
// keys; then the answer to an idempotent or dedup send is right.
func (r *replication) producerStateReady() error {
	end := r.eosEnd.Load()
	if end <= 0 || r.b.cq.FedOffset() >= end {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), producerStateWait)
	defer cancel()
	if waitFed(ctx, r.b.cq, end, r.b.stop) {
		return nil
	}
	return fmt.Errorf("%w: this new master is still applying the producer state it replicated (to offset %d)", ErrNotMaster, end)
}

// raiseEpoch raises the table to an epoch the metadata applier applied.
func (s *idempotentProducers) raiseEpoch(pid string, epoch int32) {
	s.mu.Lock()
	if s.tab != nil {
		s.tab.RaiseEpoch(pid, epoch, time.Now().UnixMilli())
	}
	s.mu.Unlock()
}

// rebuild is called before a replica's log is cut back to cut:
// the producer table is rebuilt from what stays (a snapshot at or below
// the applied position, the epochs, and the log up to that position), and
// the dedup keys of messages at or past cut are dropped. A snapshot past
// the applied position is replaced by one of the rebuilt table.
func (s *idempotentProducers) rebuild(cut int64) error {
	if cut >= s.clog.WrittenOffset() {
		return nil
	}
	a := s.applier
	a.mu.Lock()
	defer a.mu.Unlock()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	s.mu.Lock()
	loaded := s.tab != nil
	s.mu.Unlock()
	if !loaded {
		return nil
	}
	upto := min(a.pos, cut)
	table := idempotence.New()
	from := s.clog.MinOffset()
	stale := false
	if v, closer, err := s.meta.db.Get([]byte(producerSnapKey)); err == nil {
		tab, covers, rerr := idempotence.Restore(v)
		closer.Close()
		if rerr == nil && covers <= upto {
			table, from = tab, max(covers, from)
		} else {
			stale = rerr == nil
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("broker: read producer snapshot: %w", err)
	}
	if err := s.raiseStoredEpochs(table); err != nil { // idempotent.go
		return err
	}
	if err := s.replay(table, from, upto, false); err != nil {
		return err
	}
	s.dedup.dropFrom(cut) // dedupmem.go
	s.mu.Lock()
	s.tab = table
	var data []byte
	var err error
	if stale {
		data, err = table.Snapshot(upto)
	}
	s.mu.Unlock()
	a.pos = upto
	if err != nil {
		return err
	}
	if stale {
		if err := s.dedup.flush(); err != nil {
			return err
		}
		if err := s.meta.db.Set([]byte(producerSnapKey), data, pebble.Sync); err != nil {
			return fmt.Errorf("broker: save producer snapshot: %w", err)
		}
	}
	s.log.Info().Int64("offset", cut).Int64("applied", upto).Msg("replication: producer state rebuilt before the log is cut back")
	return nil
}

// waitCommitted waits until the commit point reaches end, at most
// timeout; it reports whether it did.
func (r *replication) waitCommitted(end int64, timeout time.Duration) bool {
	wake, stop := r.src.bells.Watch()
	defer stop()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for r.commit.Load() < end {
		select {
		case <-wake:
		case <-t.C:
			return false
		case <-r.ctx.Done():
			return r.commit.Load() >= end
		}
	}
	return true
}
