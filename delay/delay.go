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
	"errors"
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
