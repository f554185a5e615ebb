// Package delay redelivers scheduled messages to their real topic when due.
//
// Two kinds of schedule, both stored in the shared commitlog like any other
// message, with their destination kept in the REAL_TOPIC and REAL_QID
// properties:
//
//   - Delay levels (RocketMQ's 18 levels, 1 s … 2 h, configurable). A
//     message with DELAY=n is stored in queue n-1 of the schedule topic.
//     Within one level queue the due time (store time + level delay) only
//     grows, so the level's deliverer waits for the head entry and walks
//     forward; its position is the level's progress.
//   - Arbitrary delivery times (TIMER_DELIVER_MS, TIMER_DELAY_SEC,
//     TIMER_DELAY_MS; 1 s to 40 days). Such a message is stored in the
//     timer topic, and the consume-queue dispatcher feeds TimerIndex, which
//     keeps a pebble index keyed by (due time, commitlog offset). Its
//     deliverer scans the index up to now and delivers; its cursor is the
//     timer's progress.
//
// The decisions are a pure state machine (plan.go): each deliverer is a
// lane that is ready, waiting until a time, or idle until its source
// grows; the plan says which lanes run now and when the next one does.
// One driver goroutine (Service.run) owns the plan and a single timer: it
// runs the due lanes' steps (the reads and puts), tells the plan what
// they found, and sleeps until the plan's next time, a notification
// (Wake for the schedule queues, the index's bell for the timer topic) or
// Close. No deliverer has a goroutine or a timer of its own.
//
// Progress is saved (in pebble, or through Config.Progress, which the
// broker records in its commitlog) one SaveInterval (default 1 s) after it
// first moved, and on Close, after the messages it covers were put, so a
// restart redelivers at most about a second of messages and loses none.
// The timer index is derived state: it is rebuilt when the consume queues
// are rebuilt from the log.
//
// Index keys in the pebble database (part of the format):
//
//	w/<due ms, uint64 BE><commitlog offset, uint64 BE> → record size, uint32 BE
//	d/level/<n>                                        → next schedule-queue offset, int64 BE
//	d/timer                                            → cursor: due ms ‖ offset, 16 bytes
//	d/timer-indexed                                    → log offset below which every timer record is indexed, int64 BE
package delay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// Queues is what the scheduler reads the schedule topic's queues through.
type Queues interface {
	Get(topic string, queueID int32, offset int64, max int, dst []consumequeue.Entry) ([]consumequeue.Entry, error)
	MaxOffset(topic string, queueID int32) int64
	// Notify arms the queue's append notification; the Service ignores
	// the channel and expects the owner of the queues to call Wake for
	// the queue when it grows.
	Notify(topic string, queueID int32) <-chan struct{}
}

// Log reads stored records by commitlog offset.
type Log interface {
	ReadRecord(off int64, buf []byte) (protocol.Record, []byte, error)
}

// Putter stores messages that became due (the broker's append path, which
// does not reschedule them).
type Putter interface {
	PutDue(msgs []commitlog.Message) error
}

// Config configures the Service.
type Config struct {
	Levels        []time.Duration // level n is Levels[n-1]
	ScheduleTopic string
	TimerTopic    string
	DB            *pebble.DB
	Queues        Queues
	Log           Log
	Put           Putter
	Logger        zerolog.Logger
	Now           func() time.Time // default time.Now
	SaveInterval  time.Duration    // default 1 s
	// Progress, if set, saves progress instead of the service writing it
	// to DB itself: the broker records it in its commitlog, and whatever
	// applies that record writes it with PutProgress. It must be durable
	// when it returns nil.
	Progress func(p Progress) error
}

// Progress is how far the deliverers got: per level the next schedule-queue
// offset (Levels[n-1] for level n), and the timer deliverer's cursor.
type Progress struct {
	Levels    []int64
	TimerDue  int64 // ms
	TimerNext int64 // commitlog offset
}

// PutProgress writes p into b under the keys New loads it from.
func PutProgress(b *pebble.Batch, p Progress) error {
	for i, pos := range p.Levels {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(pos))
		if err := b.Set([]byte(levelPrefix+strconv.Itoa(i+1)), v[:], nil); err != nil {
			return err
		}
	}
	var c [16]byte
	binary.BigEndian.PutUint64(c[:], uint64(p.TimerDue))
	binary.BigEndian.PutUint64(c[8:], uint64(p.TimerNext))
	return b.Set(keyTimerCursor, c[:], nil)
}

// LoadProgress reads the saved progress of levels delay levels (zero for
// a level or cursor never saved); found says whether anything was saved.
func LoadProgress(db *pebble.DB, levels int) (p Progress, found bool, err error) {
	p.Levels = make([]int64, levels)
	for i := range p.Levels {
		v, ok, err := getInt64(db, []byte(levelPrefix+strconv.Itoa(i+1)))
		if err != nil {
			return Progress{}, false, err
		}
		if ok {
			p.Levels[i] = v
			found = true
		}
	}
	cur, err := loadCursor(db)
	if err != nil {
		return Progress{}, false, err
	}
	if cur != (timerKey{}) {
		found = true
	}
	p.TimerDue, p.TimerNext = cur.due, cur.off
	return p, found, nil
}

// Service runs the level and timer deliverers. Start launches its one
// driver goroutine; Close stops it and saves progress.
type Service struct {
	cfg   Config
	log   zerolog.Logger
	timer *TimerIndex

	// mu guards the progress, which the driver moves and Pending,
	// LevelStats, OldestNeeded and save read.
	mu       sync.Mutex
	levelPos []int64 // next offset per level queue
	cursor   timerKey
	dirty    bool

	grown []atomic.Bool // per level queue: grown since the driver looked (Wake)
	bell  chan struct{} // 1-slot doorbell: Wake rang

	// runMu guards starting and stopping the driver: a replicated broker
	// runs it only while it is its group's master.
	runMu   sync.Mutex
	running bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

var (
	keyTimerCursor  = []byte("d/timer")
	keyTimerIndexed = []byte("d/timer-indexed")
	levelPrefix     = "d/level/"
)

// New loads progress. timer must be the index the dispatcher feeds.
func New(cfg Config, timer *TimerIndex) (*Service, error) {
	if len(cfg.Levels) == 0 || cfg.DB == nil || cfg.Queues == nil || cfg.Log == nil || cfg.Put == nil {
		return nil, errors.New("delay: Levels, DB, Queues, Log and Put are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = time.Second
	}
	s := &Service{cfg: cfg, log: cfg.Logger, timer: timer, levelPos: make([]int64, len(cfg.Levels)),
		grown: make([]atomic.Bool, len(cfg.Levels)), bell: make(chan struct{}, 1)}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the saved progress into the service.
func (s *Service) load() error {
	pos := make([]int64, len(s.cfg.Levels))
	for i := range pos {
		v, ok, err := getInt64(s.cfg.DB, []byte(levelPrefix+strconv.Itoa(i+1)))
		if err != nil {
			return err
		}
		if ok {
			pos[i] = v
		}
	}
	cur, err := loadCursor(s.cfg.DB)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.levelPos, s.cursor, s.dirty = pos, cur, false
	s.mu.Unlock()
	return nil
}

// loadCursor reads the timer deliverer's saved cursor (zero when none).
func loadCursor(db *pebble.DB) (timerKey, error) {
	v, closer, err := db.Get(keyTimerCursor)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return timerKey{}, nil
	case err != nil:
		return timerKey{}, fmt.Errorf("delay: read timer cursor: %w", err)
	}
	defer closer.Close()
	if len(v) != 16 {
		return timerKey{}, nil
	}
	return timerKey{due: int64(binary.BigEndian.Uint64(v)), off: int64(binary.BigEndian.Uint64(v[8:]))}, nil
}

func getInt64(db *pebble.DB, k []byte) (int64, bool, error) {
	v, closer, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("delay: read %s: %w", k, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, fmt.Errorf("delay: %s: malformed value", k)
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// Start launches the driver goroutine; it does nothing while the driver
// runs. A stopped service may be started again.
func (s *Service) Start() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.running {
		return
	}
	s.running = true
	s.stop = make(chan struct{})
	s.wg.Add(1)
	go s.run(s.stop)
}

// Running reports whether the driver runs.
func (s *Service) Running() bool {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.running
}

// Stop ends the driver without saving progress (a replica that stopped
// being master cannot write it; the new master's saved progress is what
// counts). It does nothing when the driver is not running.
func (s *Service) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if !s.running {
		return
	}
	close(s.stop)
	s.wg.Wait()
	s.running = false
}

// Reload replaces the progress in memory with the saved one (on a replica
// that becomes master: its store holds the progress the old master
// saved). Call it while the driver is stopped.
func (s *Service) Reload() error {
	if s.Running() {
		return errors.New("delay: Reload while the driver runs")
	}
	return s.load()
}

// Close stops the driver and saves progress.
func (s *Service) Close() error {
	s.Stop()
	return s.save()
}

// Wake tells the scheduler that the schedule topic's queue queueID grew.
// The broker calls it from the consume queues' notification hook, which
// fires for a queue the scheduler armed with Queues.Notify; it never
// blocks.
func (s *Service) Wake(queueID int32) {
	if queueID < 0 || int(queueID) >= len(s.grown) {
		return
	}
	s.grown[queueID].Store(true)
	select {
	case s.bell <- struct{}{}:
	default:
	}
}

// Pending returns, per level, how many messages wait, and the timer
// index's size is not counted (it would need a scan).
func (s *Service) Pending() map[int]int64 {
	out := map[int]int64{}
	s.mu.Lock()
	pos := append([]int64(nil), s.levelPos...)
	s.mu.Unlock()
	for i, p := range pos {
		if n := s.cfg.Queues.MaxOffset(s.cfg.ScheduleTopic, int32(i)) - p; n > 0 {
			out[i+1] = n
		}
	}
	return out
}

func (s *Service) save() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	if s.cfg.Progress != nil {
		p := Progress{Levels: append([]int64(nil), s.levelPos...), TimerDue: s.cursor.due, TimerNext: s.cursor.off}
		s.dirty = false
		s.mu.Unlock()
		if err := s.cfg.Progress(p); err != nil {
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
			return err
		}
		return nil
	}
	b := s.cfg.DB.NewBatch()
	defer b.Close()
	for i, p := range s.levelPos {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(p))
		if err := b.Set([]byte(levelPrefix+strconv.Itoa(i+1)), v[:], nil); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	var c [16]byte
	binary.BigEndian.PutUint64(c[:], uint64(s.cursor.due))
	binary.BigEndian.PutUint64(c[8:], uint64(s.cursor.off))
	if err := b.Set(keyTimerCursor, c[:], nil); err != nil {
		s.mu.Unlock()
		return err
	}
	s.dirty = false
	s.mu.Unlock()
	if err := s.cfg.DB.Apply(b, pebble.Sync); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// run is the driver: it feeds the plan the notifications and the time,
// runs the lanes the plan says are due, and waits on its one timer for
// the plan's next time, a notification, or Close. It alone touches the
// plan.
func (s *Service) run(stop <-chan struct{}) {
	defer s.wg.Done()
	p := newPlan(len(s.cfg.Levels)+1, s.cfg.SaveInterval)
	timerLane := len(s.cfg.Levels)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var lanes []int
	var st laneScratch
	for {
		select {
		case <-stop: // a backlog of full batches does not hold up Close
			return
		default:
		}
		for i := range s.grown {
			if s.grown[i].Swap(false) {
				p.Notify(i)
			}
		}
		now := s.cfg.Now()
		var save bool
		lanes, save = p.Due(now, lanes)
		for _, l := range lanes {
			if l == timerLane {
				s.stepTimer(p, l, now, &st)
			} else {
				s.stepLevel(p, l, now, &st)
			}
		}
		if save {
			if err := s.save(); err != nil {
				s.log.Error().Err(err).Msg("delay: save progress")
				p.Advanced(now)
			}
		}
		next, ok := p.Next()
		if ok {
			wait := next.Sub(s.cfg.Now())
			if wait <= 0 {
				continue
			}
			timer.Reset(wait)
		}
		select {
		case <-stop:
			return
		case <-timer.C:
		case <-s.bell:
		case <-s.timer.bell():
			p.Notify(timerLane)
		}
		timer.Stop()
	}
}

// laneScratch is the driver's reusable buffers.
type laneScratch struct {
	entries []consumequeue.Entry
	buf     []byte
	due     []commitlog.Message
}

// levelBatch is how many schedule-queue entries one level step reads.
const levelBatch = 256

// stepLevel delivers the due head of level l+1's queue and tells the plan
// when the level is to run again: at its next entry's due time, when its
// queue grows, at once after a full batch, or after retryDelay on error.
func (s *Service) stepLevel(p *plan, l int, now time.Time, st *laneScratch) {
	n := l + 1
	q := int32(l)
	delay := s.cfg.Levels[l]
	s.mu.Lock()
	pos := s.levelPos[l]
	s.mu.Unlock()
	var err error
	st.entries, err = s.cfg.Queues.Get(s.cfg.ScheduleTopic, q, pos, levelBatch, st.entries[:0])
	if err != nil {
		s.log.Error().Err(err).Int("level", n).Msg("delay: read schedule queue")
		p.Failed(l, now)
		return
	}
	st.due = st.due[:0]
	next := pos
	var head time.Time // due time of the first entry not yet due
	for _, e := range st.entries {
		if e.Size == 0 {
			next = e.QueueOffset + 1 // a hole: nothing to deliver
			continue
		}
		var rec protocol.Record
		rec, st.buf, err = s.cfg.Log.ReadRecord(e.Offset, st.buf)
		if err != nil {
			s.log.Error().Err(err).Int("level", n).Int64("offset", e.Offset).Msg("delay: skipping unreadable scheduled message")
			next = e.QueueOffset + 1
			continue
		}
		if at := time.UnixMilli(rec.StoreTimestamp).Add(delay); at.After(now) {
			head = at
			break
		}
		m, err := dueMessage(rec)
		if err != nil {
			s.log.Error().Err(err).Int64("offset", e.Offset).Msg("delay: dropping scheduled message without a destination")
			next = e.QueueOffset + 1
			continue
		}
		st.due = append(st.due, m)
		next = e.QueueOffset + 1
	}
	if len(st.due) > 0 {
		if err := s.cfg.Put.PutDue(st.due); err != nil {
			s.log.Error().Err(err).Int("level", n).Msg("delay: redelivery failed; retrying")
			p.Failed(l, now)
			return
		}
	}
	if next != pos {
		s.mu.Lock()
		s.levelPos[l] = next
		s.dirty = true
		s.mu.Unlock()
		p.Advanced(now)
	}
	switch {
	case !head.IsZero():
		// Entries appended meanwhile are due after the head: no need
		// to hear of them.
		p.WaitUntil(l, head)
	case len(st.entries) == levelBatch:
		p.More(l)
	default:
		// Drained: arm the queue's notification, then look once more.
		// An append before the arming is seen here, one after it
		// reaches Wake.
		s.cfg.Queues.Notify(s.cfg.ScheduleTopic, q)
		if s.cfg.Queues.MaxOffset(s.cfg.ScheduleTopic, q) > next {
			p.More(l)
		} else {
			p.Drained(l)
		}
	}
}

// dueMessage rebuilds the message to deliver from a scheduled record:
// same body, flags, born info, reconsume count and properties (the msgId
// in UNIQ_KEY included), minus the scheduling properties, to REAL_TOPIC /
// REAL_QID.
func dueMessage(rec protocol.Record) (commitlog.Message, error) {
	p := protocol.ParseProperties(rec.Properties)
	topic := p[protocol.PropRealTopic]
	qid, err := strconv.Atoi(p[protocol.PropRealQueueID])
	if topic == "" || err != nil || qid < 0 {
		return commitlog.Message{}, fmt.Errorf("delay: record at %d has no REAL_TOPIC/REAL_QID", rec.PhysicalOffset)
	}
	delete(p, protocol.PropDelayLevel)
	delete(p, protocol.PropTimerDeliverMS)
	delete(p, protocol.PropTimerDelaySec)
	delete(p, protocol.PropTimerDelayMS)
	return commitlog.Message{
		Topic: topic, QueueID: int32(qid), Flag: rec.Flag, SysFlag: rec.SysFlag,
		Body: append([]byte(nil), rec.Body...), Properties: protocol.EncodeProperties(p),
		BornTimestamp: rec.BornTimestamp, BornHost: rec.BornHost, StoreHost: rec.StoreHost,
		ReconsumeTimes: rec.ReconsumeTimes,
	}, nil
}

// timerBatch is how many timer-index entries one timer step delivers.
const timerBatch = 512

// stepTimer delivers the due entries of the timer index and tells the
// plan when to run again: at the next entry's due time, when the index
// rings, at once after a full batch, or after retryDelay on error.
func (s *Service) stepTimer(p *plan, l int, now time.Time, st *laneScratch) {
	s.mu.Lock()
	cur := s.cursor
	s.mu.Unlock()
	keys, next, err := s.timer.scan(cur, now.UnixMilli(), timerBatch)
	if err != nil {
		s.log.Error().Err(err).Msg("delay: scan timer index")
		p.Failed(l, now)
		return
	}
	st.due = st.due[:0]
	for _, k := range keys {
		var rec protocol.Record
		rec, st.buf, err = s.cfg.Log.ReadRecord(k.off, st.buf)
		if err != nil {
			s.log.Error().Err(err).Int64("offset", k.off).Msg("delay: skipping unreadable timer message")
			continue
		}
		m, err := dueMessage(rec)
		if err != nil {
			s.log.Error().Err(err).Msg("delay: dropping timer message without a destination")
			continue
		}
		st.due = append(st.due, m)
	}
	if len(st.due) > 0 {
		if err := s.cfg.Put.PutDue(st.due); err != nil {
			s.log.Error().Err(err).Msg("delay: timer redelivery failed; retrying")
			p.Failed(l, now)
			return
		}
	}
	if len(keys) > 0 {
		last := keys[len(keys)-1]
		s.mu.Lock()
		s.cursor = timerKey{due: last.due, off: last.off + 1}
		s.dirty = true
		s.mu.Unlock()
		p.Advanced(now)
		if err := s.timer.deleteThrough(last); err != nil {
			s.log.Warn().Err(err).Msg("delay: trim delivered timer entries")
		}
	}
	switch {
	case len(keys) == timerBatch:
		p.More(l)
	case next.due > 0:
		p.WaitUntil(l, time.UnixMilli(next.due))
	default:
		p.Drained(l)
	}
}

// OldestNeeded returns the lowest commitlog offset a pending scheduled
// message still lives at (math.MaxInt64 when none): retention must not
// delete segments at or above it.
func (s *Service) OldestNeeded() (int64, error) {
	oldest := int64(math.MaxInt64)
	s.mu.Lock()
	pos := append([]int64(nil), s.levelPos...)
	cur := s.cursor
	s.mu.Unlock()
	for i, p := range pos {
		es, err := s.cfg.Queues.Get(s.cfg.ScheduleTopic, int32(i), p, 1, nil)
		if err != nil {
			return 0, err
		}
		if len(es) > 0 {
			oldest = min(oldest, es[0].Offset)
		}
	}
	off, err := s.timer.minOffset(cur)
	if err != nil {
		return 0, err
	}
	return min(oldest, off), nil
}
