// Package idempotence holds the broker's idempotent-producer state: for
// every producer id its epoch and, per queue, the last sequence stored and
// where the last few batches went. Check decides whether a send is new, a
// retry of something already stored (answered with the original result),
// out of order, or from a fenced (older) epoch.
//
// The state is derived from the commitlog: every message of an idempotent
// producer carries its producer id, epoch and sequence as properties, and
// the broker rebuilds the table after a restart from a snapshot plus a
// scan of the log written since (Apply). Table is a plain value with no
// goroutines or I/O; the caller serialises access.
//
// Memory: a producer costs about 120 bytes plus its id; each queue it has
// written about 100 bytes plus, for each of the last MaxCachedBatches
// batches, 48 bytes and 8 bytes per message. Producers idle longer than
// the expiry are dropped by Expire.
package idempotence

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// MaxCachedBatches is how many batches per (producer, queue) keep their
// results, so that a retry of any of them is answered with the original
// result (Kafka keeps 5 too: a producer has at most that many in flight).
const MaxCachedBatches = 5

// maxMergedBatch caps how many messages Apply merges into one cached
// batch while replaying the log (records do not say where batches ended).
const maxMergedBatch = 4096

// DefaultExpiry is how long a producer may stay idle before its state is
// dropped (Kafka's producer id expiry).
const DefaultExpiry = 7 * 24 * time.Hour

// Errors of Check. Each wraps one of these sentinels.
var (
	// ErrOutOfOrder says the batch's first sequence is not the next one
	// expected (a gap, or a sequence older than the cached batches).
	ErrOutOfOrder = errors.New("idempotence: out of order sequence")
	// ErrFenced says a newer epoch of the same producer id has started.
	ErrFenced = errors.New("idempotence: producer fenced by a newer epoch")
	// ErrInvalid says the producer fields are malformed.
	ErrInvalid = errors.New("idempotence: invalid producer fields")
)

// Queue names one queue of one topic.
type Queue struct {
	Topic string
	ID    int32
}

// Stored says where one message was stored.
type Stored struct {
	CommitlogOffset int64
	QueueOffset     int64
}

// batch is a run of consecutive sequences stored together.
type batch struct {
	FirstSeq    int64
	QueueOffset int64   // of the first message; the others follow it
	Offsets     []int64 // commitlog offset of each message
}

func (b *batch) lastSeq() int64 { return b.FirstSeq + int64(len(b.Offsets)) - 1 }

// queueState is one producer's progress on one queue.
type queueState struct {
	LastSeq int64
	Batches []batch // oldest first, at most MaxCachedBatches
}

// producer is one producer id's state.
type producer struct {
	Epoch    int32
	LastSeen int64 // unix ms of the last send or init
	Queues   map[Queue]*queueState
}

// Table is the state of every producer id. The zero value is not usable;
// call New.
type Table struct {
	producers map[string]*producer
}

// New returns an empty table.
func New() *Table { return &Table{producers: make(map[string]*producer)} }

// Decision is Check's verdict on a send that may go ahead.
type Decision int

const (
	// Append: the batch is the next one expected; store it, then Record it.
	Append Decision = iota
	// Duplicate: the batch was stored before; answer with the results.
	Duplicate
)

// Check decides about a batch of count messages with sequences firstSeq …
// firstSeq+count-1 from producer pid at epoch for queue q. On Duplicate it
// returns where each message was stored.
//
// The rules: an epoch older than the producer's is fenced; a newer one is
// accepted and becomes the producer's (sequences continue across epochs,
// so a restarted producer picks up where the broker says it left off); a
// batch at the next sequence is appended; a batch inside the cached
// batches is a duplicate; anything else is out of order. A queue the
// producer has not written starts at sequence 0.
func (t *Table) Check(pid string, epoch int32, q Queue, firstSeq int64, count int) (Decision, []Stored, error) {
	if pid == "" || epoch < 0 || firstSeq < 0 || count <= 0 {
		return 0, nil, fmt.Errorf("%w: producer %q epoch %d sequence %d count %d", ErrInvalid, pid, epoch, firstSeq, count)
	}
	p := t.producers[pid]
	if p != nil && epoch < p.Epoch {
		return 0, nil, fmt.Errorf("%w: producer %s epoch %d, current epoch %d", ErrFenced, pid, epoch, p.Epoch)
	}
	var qs *queueState
	if p != nil {
		qs = p.Queues[q]
	}
	last := int64(-1)
	if qs != nil {
		last = qs.LastSeq
	}
	if firstSeq == last+1 {
		return Append, nil, nil
	}
	if qs != nil && firstSeq <= last {
		if res, ok := qs.lookup(firstSeq, count); ok {
			return Duplicate, res, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: producer %s queue %s:%d expected sequence %d, got %d (batch of %d)",
		ErrOutOfOrder, pid, q.Topic, q.ID, last+1, firstSeq, count)
}

// lookup gathers the results of sequences first … first+count-1 from the
// cached batches.
func (qs *queueState) lookup(first int64, count int) ([]Stored, bool) {
	end := first + int64(count) - 1
	if end > qs.LastSeq {
		return nil, false
	}
	out := make([]Stored, 0, count)
	next := first
	for i := range qs.Batches {
		b := &qs.Batches[i]
		if next > b.lastSeq() || next < b.FirstSeq {
			continue
		}
		for s := next; s <= min(end, b.lastSeq()); s++ {
			k := s - b.FirstSeq
			out = append(out, Stored{CommitlogOffset: b.Offsets[k], QueueOffset: b.QueueOffset + k})
		}
		next = min(end, b.lastSeq()) + 1
		if next > end {
			return out, true
		}
	}
	return nil, false
}

// Record notes that a batch Check allowed was stored as res (one entry per
// message, in sequence order) at nowMs.
//
// A batch whose messages the table already holds (Apply took them from
// the log first) is not recorded again.
func (t *Table) Record(pid string, epoch int32, q Queue, firstSeq int64, res []Stored, nowMs int64) {
	if len(res) == 0 {
		return
	}
	p := t.producer(pid)
	p.Epoch = max(p.Epoch, epoch)
	p.LastSeen = max(p.LastSeen, nowMs)
	qs := p.queue(q)
	if res[len(res)-1].CommitlogOffset <= qs.lastOffset() {
		return
	}
	offs := make([]int64, len(res))
	for i, r := range res {
		offs[i] = r.CommitlogOffset
	}
	qs.push(batch{FirstSeq: firstSeq, QueueOffset: res[0].QueueOffset, Offsets: offs})
}

// lastOffset is the commitlog offset of the last message cached, -1
// when none is.
func (qs *queueState) lastOffset() int64 {
	if n := len(qs.Batches); n > 0 {
		b := &qs.Batches[n-1]
		return b.Offsets[len(b.Offsets)-1]
	}
	return -1
}

func (qs *queueState) push(b batch) {
	if len(qs.Batches) == MaxCachedBatches {
		copy(qs.Batches, qs.Batches[1:])
		qs.Batches = qs.Batches[:MaxCachedBatches-1]
	}
	qs.Batches = append(qs.Batches, b)
	qs.LastSeq = b.lastSeq()
}

func (t *Table) producer(pid string) *producer {
	p := t.producers[pid]
	if p == nil {
		p = &producer{Queues: make(map[Queue]*queueState)}
		t.producers[pid] = p
	}
	return p
}

func (p *producer) queue(q Queue) *queueState {
	qs := p.Queues[q]
	if qs == nil {
		qs = &queueState{LastSeq: -1}
		p.Queues[q] = qs
	}
	return qs
}

// Apply replays one stored message of an idempotent producer (recovery
// from the log). Only what Check would have let through changes the
// state: the next sequence of the queue, or sequence 0 (the producer
// started the queue afresh after its state expired). Anything else is
// already known or a copy of a message stored again elsewhere, and is
// skipped. A message that continues the last cached batch (next
// sequence, next queue offset) joins it. A message at or below the last
// commitlog offset the queue's state holds is already reflected (the log
// is fed again after a restart, or the broker recorded the send itself)
// and is skipped too, so applying a record twice leaves what applying it
// once does.
func (t *Table) Apply(pid string, epoch int32, q Queue, seq int64, s Stored, storeMs int64) {
	if pid == "" || seq < 0 {
		return
	}
	p := t.producer(pid)
	p.Epoch = max(p.Epoch, epoch)
	p.LastSeen = max(p.LastSeen, storeMs)
	qs := p.queue(q)
	if s.CommitlogOffset <= qs.lastOffset() {
		return
	}
	switch {
	case seq == qs.LastSeq+1:
	case seq == 0:
		qs.Batches, qs.LastSeq = qs.Batches[:0], -1
	default:
		return
	}
	if n := len(qs.Batches); n > 0 && seq == qs.LastSeq+1 {
		b := &qs.Batches[n-1]
		if s.QueueOffset == b.QueueOffset+int64(len(b.Offsets)) && len(b.Offsets) < maxMergedBatch {
			b.Offsets = append(b.Offsets, s.CommitlogOffset)
			qs.LastSeq = seq
			return
		}
	}
	qs.push(batch{FirstSeq: seq, QueueOffset: s.QueueOffset, Offsets: []int64{s.CommitlogOffset}})
}

// Init starts a new epoch of producer pid (fencing every older one) and
// returns it with the last sequence stored on each queue, so that a
// restarted producer continues where it left off.
func (t *Table) Init(pid string, nowMs int64) (int32, map[Queue]int64) {
	p := t.producer(pid)
	p.Epoch++
	p.LastSeen = max(p.LastSeen, nowMs)
	return p.Epoch, t.lastSeqs(p)
}

// NextEpoch is the epoch Init would start for pid, without starting it
// (the caller stores it first, then raises the table to it).
func (t *Table) NextEpoch(pid string) int32 {
	if p := t.producers[pid]; p != nil {
		return p.Epoch + 1
	}
	return 1
}

// LastSeqs returns the last sequence stored on each queue by pid.
func (t *Table) LastSeqs(pid string) map[Queue]int64 {
	p := t.producers[pid]
	if p == nil {
		return map[Queue]int64{}
	}
	return t.lastSeqs(p)
}

// RaiseEpoch makes epoch the producer's epoch if it is newer (an epoch
// granted by Init and persisted before any message carried it).
func (t *Table) RaiseEpoch(pid string, epoch int32, nowMs int64) {
	p := t.producer(pid)
	p.Epoch = max(p.Epoch, epoch)
	p.LastSeen = max(p.LastSeen, nowMs)
}

func (t *Table) lastSeqs(p *producer) map[Queue]int64 {
	out := make(map[Queue]int64, len(p.Queues))
	for q, qs := range p.Queues {
		out[q] = qs.LastSeq
	}
	return out
}

// ProducerInfo describes one producer for operators.
type ProducerInfo struct {
	ID       string
	Epoch    int32
	LastSeen time.Time
	LastSeqs map[Queue]int64
}

// Producers lists every producer, by id.
func (t *Table) Producers() []ProducerInfo {
	out := make([]ProducerInfo, 0, len(t.producers))
	for id, p := range t.producers {
		out = append(out, ProducerInfo{ID: id, Epoch: p.Epoch, LastSeen: time.UnixMilli(p.LastSeen), LastSeqs: t.lastSeqs(p)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len is the number of producers.
func (t *Table) Len() int { return len(t.producers) }

// Expire drops producers not seen since nowMs-expiry and returns their ids.
func (t *Table) Expire(nowMs int64, expiry time.Duration) []string {
	var gone []string
	for id, p := range t.producers {
		if p.LastSeen < nowMs-expiry.Milliseconds() {
			delete(t.producers, id)
			gone = append(gone, id)
		}
	}
	return gone
}
