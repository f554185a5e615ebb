package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/idempotence"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Idempotent sends. A message of an idempotent producer carries its
// producer id, epoch and sequence as properties (protocol.PropProducer*).
// The broker checks each such send against the producer table and either
// stores it, answers a retry with the original result, or refuses it
// (out of order, fenced epoch).
//
// Concurrency: a send holds its producer's stripe lock from the check
// through the append to recording the result, so two copies of one
// batch racing on two connections cannot both pass the check. It also
// holds snapMu for reading, so a snapshot (which takes it for writing)
// sees no idempotent append between the log and the table. mu guards the
// table itself. Lock order: stripe, snapMu, mu.
//
// Recovery: the table is saved in the metadata store (key producerSnapKey)
// with the commitlog offset it covers, every ProducerSnapshotInterval and
// at shutdown; on open the broker restores it and replays the log from
// that offset. Epochs granted by INIT_PRODUCER_ID are metadata records,
// which the applier stores under producerEpochPrefix, because no message
// may carry them yet. On a replica group every replica keeps the table
// up to date from the replicated log (eos_replica.go).
//
// # Goroutines
//
// snapshots, started by the Broker and stopped by its stop channel,
// saves the table and sweeps the dedup keys every
// ProducerSnapshotInterval.
type idempotentProducers struct {
	clog    *commitlog.Log
	meta    *metaStore
	metaLog *metaLog // INIT_PRODUCER_ID's epochs are metadata records
	dedup   *dedupWindows
	metrics *metrics
	log     zerolog.Logger
	cfg     func() *Config        // the configuration in force
	host    func() netip.AddrPort // the advertised address, of message ids
	send    idemSender            // the send path (send.go); set once it is built
	// repl answers stored sends, and on a replica group bounds what a
	// snapshot covers (eos_replica.go); set once replication is built.
	repl *replication

	stripes [64]sync.Mutex
	seed    maphash.Seed
	snapMu  sync.RWMutex
	mu      sync.Mutex
	tab     *idempotence.Table // guarded by mu
	// applier keeps tab and the dedup keys up to date from the
	// dispatched log (eos_replica.go). Lock order: applier.mu first.
	applier *producerApplier
}

// Keys of the metadata store (part of the format).
const (
	producerSnapKey     = "ps"  // → idempotence snapshot (JSON)
	producerEpochPrefix = "pe/" // pe/<producer id> → epoch uint32 BE
)

// maxProducerIDLen bounds a producer id.
const maxProducerIDLen = 255

var errIdempotent = errors.New("broker: idempotent send")

// idemSender is the send path as idempotent producers use it (send.go).
type idemSender interface {
	appendMessages(msgs []commitlog.Message, answer func(res []commitlog.AppendResult, err error))
	sendResponse(req *remoting.Command, msgs []commitlog.Message, res []commitlog.AppendResult, err error) *remoting.Command
}

// newIdempotentProducers builds the producer table's keeper, with the
// applier that keeps it up to date from the dispatched log, over the
// dedup windows it shares its snapshot lock with; load fills the table.
func newIdempotentProducers(dedup *dedupWindows, metaLog *metaLog, cfg func() *Config) *idempotentProducers {
	s := &idempotentProducers{clog: dedup.clog, meta: dedup.meta, metaLog: metaLog, dedup: dedup, metrics: dedup.metrics,
		log: dedup.log, cfg: cfg, host: dedup.host}
	s.applier = &producerApplier{p: s}
	dedup.snapMu = &s.snapMu
	return s
}

func (s *idempotentProducers) stripe(pid string) *sync.Mutex {
	return &s.stripes[maphash.String(s.seed, pid)%uint64(len(s.stripes))]
}

// handleSend stores a send request's msgs if they come from an
// idempotent producer, answers it and returns true; it returns false for
// plain messages, which it leaves alone.
func (s *idempotentProducers) handleSend(c *remoting.Conn, req *remoting.Command, msgs []commitlog.Message) bool {
	f, ok, err := batchProducerFields(msgs)
	if !ok {
		return false
	}
	if err == nil && (msgs[0].Topic == protocol.ScheduleTopic || msgs[0].Topic == protocol.TimerTopic) {
		err = fmt.Errorf("%w: an idempotent send cannot be delayed (the delay service stores the message again)", errIdempotent)
	}
	if err == nil && requestQueueID(req) < 0 {
		// The broker would pick a queue at random: the sequence is per queue.
		err = fmt.Errorf("%w: an idempotent send must name its queue", errIdempotent)
	}
	if err != nil {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespMessageIllegal, err.Error()))
		return true
	}
	if err := s.repl.producerStateReady(); err != nil { // eos_replica.go
		code, remark := sendError(err)
		_ = c.Reply(remoting.NewResponse(req, code, remark))
		return true
	}
	s.repl.replyAfterWrite(c, req, s.store(req, msgs, f), msgs[0].Topic) // replication.go
	return true
}

// store checks an idempotent batch, stores it when it is new,
// and builds the answer.
func (s *idempotentProducers) store(req *remoting.Command, msgs []commitlog.Message, f producerFields) (resp *remoting.Command) {
	lk := s.stripe(f.pid)
	lk.Lock()
	defer lk.Unlock()
	s.snapMu.RLock()
	defer s.snapMu.RUnlock()
	q := idempotence.Queue{Topic: msgs[0].Topic, ID: msgs[0].QueueID}
	s.mu.Lock()
	d, prev, err := s.tab.Check(f.pid, f.epoch, q, f.seq, len(msgs))
	s.mu.Unlock()
	switch {
	case errors.Is(err, idempotence.ErrFenced):
		return remoting.NewResponse(req, protocol.RespProducerFenced, err.Error())
	case errors.Is(err, idempotence.ErrOutOfOrder):
		return remoting.NewResponse(req, protocol.RespOutOfOrderSequence, err.Error())
	case err != nil:
		return remoting.NewResponse(req, protocol.RespMessageIllegal, err.Error())
	case d == idempotence.Duplicate:
		s.metrics.duplicates.WithLabelValues("idempotent").Add(float64(len(msgs)))
		return resultResponse(s.host(), req, q.ID, prev, true)
	}
	s.send.appendMessages(msgs, func(res []commitlog.AppendResult, err error) {
		if res != nil {
			stored := make([]idempotence.Stored, len(res))
			for i, r := range res {
				stored[i] = idempotence.Stored{CommitlogOffset: r.Offset, QueueOffset: r.QueueOffset}
			}
			s.mu.Lock()
			s.tab.Record(f.pid, f.epoch, q, f.seq, stored, time.Now().UnixMilli())
			s.mu.Unlock()
		}
		resp = s.send.sendResponse(req, msgs, res, err)
	})
	return resp
}

// resultResponse answers a send with where its messages were stored
// (message ids of broker address host); dup says all of them were stored
// by an earlier send.
func resultResponse(host netip.AddrPort, req *remoting.Command, queue int32, prev []idempotence.Stored, dup bool) *remoting.Command {
	out := remoting.NewResponse(req, protocol.RespSuccess, "")
	ids := make([]string, len(prev))
	for i, p := range prev {
		ids[i] = protocol.OffsetMsgID(host, p.CommitlogOffset)
	}
	out.Set("msgId", strings.Join(ids, ","))
	out.Set("queueId", strconv.Itoa(int(queue)))
	out.Set("queueOffset", strconv.FormatInt(prev[0].QueueOffset, 10))
	out.Set("MSG_REGION", "DefaultRegion")
	out.Set("TRACE_ON", "true")
	if dup {
		out.Set("duplicate", "true")
	}
	return out
}

// handleInitProducerID serves INIT_PRODUCER_ID: a new epoch for the
// producer id in the header, stored as a metadata record and applied
// (on a replica group: committed) before it is answered.
func (s *idempotentProducers) handleInitProducerID(c *remoting.Conn, req *remoting.Command) {
	reply := func(code int16, remark string) { _ = c.Reply(remoting.NewResponse(req, code, remark)) }
	pid := req.StringOr("producerId", "")
	if pid == "" || len(pid) > maxProducerIDLen || !protocol.ValidPropertyText(pid) {
		reply(protocol.RespMessageIllegal, fmt.Sprintf("producerId must be 1 to %d bytes without \\x01 or \\x02", maxProducerIDLen))
		return
	}
	if err := s.repl.producerStateReady(); err != nil { // eos_replica.go
		reply(sendError(err))
		return
	}
	lk := s.stripe(pid)
	lk.Lock()
	defer lk.Unlock()
	// The table takes the epoch only once it is stored: a replica that
	// refuses the write (not master) must not fence the epoch its master
	// grants.
	s.mu.Lock()
	epoch := s.tab.NextEpoch(pid)
	s.mu.Unlock()
	if err := s.metaLog.write([]metaChange{{Kind: metaProducerEpoch, Name: pid, Epoch: epoch}}, true); err != nil {
		code, remark := sendError(err)
		if code == protocol.RespSystemError {
			remark = "persist producer epoch: " + remark
		}
		reply(code, remark)
		return
	}
	s.mu.Lock()
	s.tab.RaiseEpoch(pid, epoch, time.Now().UnixMilli())
	last := s.tab.LastSeqs(pid)
	s.mu.Unlock()
	body := remoting.InitProducerIDResponse{Epoch: epoch, Queues: make([]remoting.ProducerQueueSeq, 0, len(last))}
	for q, seq := range last {
		body.Queues = append(body.Queues, remoting.ProducerQueueSeq{Topic: q.Topic, QueueID: q.ID, LastSeq: seq})
	}
	data, err := json.Marshal(body)
	if err != nil {
		reply(protocol.RespSystemError, err.Error())
		return
	}
	out := remoting.NewResponse(req, protocol.RespSuccess, "")
	out.Set("epoch", strconv.Itoa(int(epoch)))
	out.Body = data
	_ = c.Reply(out)
}

// Producers lists the idempotent producers the broker knows.
func (b *Broker) Producers() []idempotence.ProducerInfo { return b.idem.producers() }

// producers lists the idempotent producers the table holds.
func (s *idempotentProducers) producers() []idempotence.ProducerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tab.Producers()
}

// load rebuilds the producer table: the last snapshot, the
// epochs granted since, and the log written after the snapshot.
func (s *idempotentProducers) load() error {
	s.seed = maphash.MakeSeed()
	// The applier takes the dispatched log from where the replay ends.
	a := s.applier
	a.mu.Lock()
	defer a.mu.Unlock()
	// Built aside and published only when complete: a broker that fails
	// to open must not save (at close) a partial table as covering the log.
	table := idempotence.New()
	from := s.clog.MinOffset()
	if v, closer, err := s.meta.db.Get([]byte(producerSnapKey)); err == nil {
		tab, covers, rerr := idempotence.Restore(v)
		closer.Close()
		switch {
		case rerr != nil:
			s.log.Warn().Err(rerr).Msg("producer snapshot unreadable; rebuilding from the log")
		case covers > s.clog.WrittenOffset():
			// The log lost its tail since (a power loss in async flush):
			// the snapshot may know of messages that are gone.
			s.log.Warn().Int64("offset", covers).Msg("producer snapshot is past the end of the log; rebuilding from the log")
		default:
			table, from = tab, max(covers, from)
		}
	} else if errors.Is(err, pebble.ErrNotFound) {
		// No snapshot yet (a new data directory, or one from before
		// idempotent producers): nothing in the log carries producer
		// fields, so start at its end instead of reading all of it.
		from = s.clog.WrittenOffset()
		data, err := table.Snapshot(from)
		if err == nil {
			err = s.meta.db.Set([]byte(producerSnapKey), data, pebble.Sync)
		}
		if err != nil {
			return fmt.Errorf("broker: save the first producer snapshot: %w", err)
		}
	} else {
		return fmt.Errorf("broker: read producer snapshot: %w", err)
	}
	if err := s.raiseStoredEpochs(table); err != nil {
		return err
	}
	nowT := time.Now()
	if err := s.dedup.loadFilter(); err != nil { // dedup.go
		return err
	}
	if err := s.dedup.loadJournal(nowT); err != nil { // dedupmem.go
		return err
	}
	end := s.clog.WrittenOffset()
	if err := s.replay(table, from, end, true); err != nil {
		return err
	}
	if err := s.dedup.flush(); err != nil { // dedupmem.go: the keys replayed
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tab = table
	a.pos = max(a.pos, end)
	// An epoch the metadata applier stored while the table was built
	// aside: from here on it raises the published table itself.
	return s.raiseStoredEpochs(table)
}

// raiseStoredEpochs raises table to the epochs in the metadata store.
func (s *idempotentProducers) raiseStoredEpochs(table *idempotence.Table) error {
	now := time.Now().UnixMilli()
	err := s.meta.scan(producerEpochPrefix, func(k, v []byte) error {
		if len(v) == 4 {
			table.RaiseEpoch(string(k[len(producerEpochPrefix):]), int32(binary.BigEndian.Uint32(v)), now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: read producer epochs: %w", err)
	}
	return nil
}

// replay applies the log from from to to to table and, with
// dedup, to the dedup keys.
func (s *idempotentProducers) replay(table *idempotence.Table, from, to int64, dedup bool) error {
	if from >= to {
		return nil
	}
	var buf []byte
	now := time.Now()
	_, err := s.clog.Scan(from, to, &buf, func(off int64, raw []byte) error {
		rec, err := protocol.Decode(raw)
		if err != nil {
			return err
		}
		if dedup {
			s.dedup.replay(&rec, off, now) // dedup.go
		}
		if f, topic, ok := producerRecord(&rec); ok {
			table.Apply(f.pid, f.epoch, idempotence.Queue{Topic: topic, ID: rec.QueueID}, f.seq,
				idempotence.Stored{CommitlogOffset: off, QueueOffset: rec.QueueOffset}, rec.StoreTimestamp)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("broker: replay the log for producer state: %w", err)
	}
	return nil
}

// snapshot drops expired producers and saves the table with the
// log offset it covers. On a replica group the snapshot covers committed
// data only: a slave's table is the log applied up to the applier's
// position; a master's also holds its own sends, so it snapshots only
// once the commit point has reached its log's end (and skips the round
// otherwise).
func (s *idempotentProducers) snapshot(now time.Time) error {
	expiry := s.cfg().ProducerIDExpiry.D()
	if expiry <= 0 {
		expiry = idempotence.DefaultExpiry
	}
	// A slave's table is what its applier applied: hold the applier
	// still (lock order: applier, snapMu). A master's is not waited on
	// with the applier held, which would stall dispatch.
	a := s.applier
	slave := s.repl.on && s.repl.isSlave()
	if slave {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	s.snapMu.Lock()
	covers := s.clog.WrittenOffset()
	if s.repl.on {
		switch {
		case s.repl.isSlave() != slave:
			s.snapMu.Unlock()
			return nil // the role just changed: the next round
		case slave:
			covers = a.pos
		case !s.repl.waitCommitted(covers, snapshotCommitWait): // eos_replica.go
			// No idempotent or dedup send appends while snapMu is held,
			// so the wait is short when the slaves keep up.
			s.snapMu.Unlock()
			s.log.Debug().Int64("offset", covers).Msg("producer snapshot skipped: the log's end is not committed yet")
			return nil
		}
	}
	// The snapshot's replay puts back only the keys of messages after
	// it: those of earlier ones must be in the store first.
	if err := s.dedup.flush(); err != nil { // dedup.go
		s.snapMu.Unlock()
		return err
	}
	s.mu.Lock()
	gone := s.tab.Expire(now.UnixMilli(), expiry)
	data, err := s.tab.Snapshot(covers)
	s.mu.Unlock()
	s.snapMu.Unlock()
	if err != nil {
		return err
	}
	batch := s.meta.db.NewBatch()
	defer batch.Close()
	for _, id := range gone {
		if err := batch.Delete([]byte(producerEpochPrefix+id), nil); err != nil {
			return err
		}
	}
	if err := batch.Set([]byte(producerSnapKey), data, nil); err != nil {
		return err
	}
	return s.meta.db.Apply(batch, pebble.Sync)
}

// snapshots saves the producer table and sweeps expired dedup keys
// periodically until stop is closed.
func (s *idempotentProducers) snapshots(stop <-chan struct{}) {
	everyTick(stop, orDur(s.cfg().ProducerSnapshotInterval.D(), time.Minute), func(now time.Time) {
		if err := s.snapshot(now); err != nil {
			s.log.Error().Err(err).Msg("save producer state")
		}
		if err := s.dedup.sweep(now); err != nil {
			s.log.Error().Err(err).Msg("sweep dedup keys")
		}
	})
}

// states lists the idempotent producers for GET /v1/producers and
// FERRY_PRODUCER_LIST.
func (s *idempotentProducers) states() []protocol.ProducerState {
	ps := s.producers()
	out := make([]protocol.ProducerState, len(ps))
	for i, p := range ps {
		out[i] = protocol.ProducerState{ID: p.ID, Epoch: p.Epoch, LastSeenMs: p.LastSeen.UnixMilli(), Queues: []protocol.ProducerQueue{}}
		for q, seq := range p.LastSeqs {
			out[i].Queues = append(out[i].Queues, protocol.ProducerQueue{Topic: q.Topic, QueueID: q.ID, LastSeq: seq})
		}
		sort.Slice(out[i].Queues, func(a, c int) bool {
			x, y := out[i].Queues[a], out[i].Queues[c]
			return x.Topic < y.Topic || x.Topic == y.Topic && x.QueueID < y.QueueID
		})
	}
	return out
}
