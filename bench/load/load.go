// Package load is Ferry's load generator (`ferry bench produce|consume`).
//
// It speaks the remoting protocol directly, so it measures the broker and
// not an SDK: N producer goroutines over M connections send single
// messages (SEND_MESSAGE_V2) or batches (SEND_BATCH_MESSAGE) flat out or at a
// fixed total rate, and report throughput and HDR latency percentiles of
// the send round trip. The consume mode long-polls every queue of the
// topic and reports end-to-end latency, born (the producer's clock,
// written as nanoseconds in the first 8 bytes of each body) to delivered.
// Producer and consumer run in one process so the two clocks are one.
package load

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Config is one load run.
type Config struct {
	Namesrv     string        // name server ip:port (routes)
	Topic       string        // base topic name
	Topics      int           // topics (Topic-0 … Topic-N-1 when > 1)
	Queues      int           // queues per topic, created if missing
	Producers   int           // sending goroutines
	Conns       int           // connections they share
	Size        int           // body bytes
	Batch       int           // messages per send (1 = SEND_MESSAGE)
	Rate        int           // total msg/s, 0 = flat out
	Duration    time.Duration // measured time
	Warmup      time.Duration // unmeasured time first
	Consume     bool          // also consume and measure end to end
	Progress    io.Writer     // one line a second (nil: none)
	SendTimeout time.Duration
	// Credentials authenticate every connection once (brokers with an ACL
	// file), or sign every request with SignRequests; TLS, when set, makes
	// every connection a TLS one.
	Credentials  remoting.Credentials
	SignRequests bool
	TLS          *tls.Config
	// Idempotent sends every message with a producer id (one per sending
	// goroutine), epoch and per-queue sequence, as WithIdempotence does.
	Idempotent bool
	// Window > 0 sends through the public SDK instead: each producer is a
	// client.Producer calling SendAsync per message with at most Window
	// unanswered (sdk.go); Batch and Conns do not apply. Linger is the
	// SDK's WithLinger.
	Window int
	Linger time.Duration
	// Consumers is the number of SDK push consumers of the consume mode
	// with Window > 0, each in a group of its own subscribing every topic
	// (default 1).
	Consumers int
	// PullBatch, when > 0, is the SDK push consumers' pull batch size
	// (client.WithPullBatchSize).
	PullBatch int
	// Idle runs the consumers only, with no producer: the broker holds
	// their long polls for Duration (with Consume and Window > 0).
	Idle bool
	// DedupWindow, when set, is the dedup window of the topics this run
	// creates (a topic that exists keeps its own).
	DedupWindow time.Duration
	// Transactions sends every message as a transaction committed at once,
	// through the SDK's SendInTransaction, one at a time per producer
	// (tx.go); the send latency is the whole transaction's.
	Transactions bool
}

// remotingConfig is the client configuration of every connection.
func (c *Config) remotingConfig() remoting.ClientConfig {
	return remoting.ClientConfig{Credentials: c.Credentials, Authenticate: !c.SignRequests, TLS: c.TLS}
}

// Result is what a run measured.
type Result struct {
	Sent          int64
	Errors        int64
	Seconds       float64
	MsgPerSec     float64
	MiBPerSec     float64
	SendP50       time.Duration
	SendP99       time.Duration
	SendP999      time.Duration
	Consumed      int64
	ConsumePerSec float64
	E2EP50        time.Duration
	E2EP99        time.Duration
	E2EP999       time.Duration
	FirstError    string
}

func (c *Config) defaults() error {
	if c.Namesrv == "" {
		c.Namesrv = "127.0.0.1:9876"
	}
	if c.Topic == "" {
		c.Topic = "BenchTopic"
	}
	if c.Topics <= 0 {
		c.Topics = 1
	}
	if c.Queues <= 0 {
		c.Queues = 8
	}
	if c.Producers <= 0 {
		c.Producers = 4
	}
	if c.Conns <= 0 {
		c.Conns = min(c.Producers, 4)
	}
	if c.Size < 8 {
		c.Size = 1024
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.Duration <= 0 {
		c.Duration = 15 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.Rate < 0 {
		return errors.New("load: rate must not be negative")
	}
	if c.Window < 0 || c.Window > 0 && (c.Batch > 1 || c.Idempotent) {
		return errors.New("load: the SDK mode (window) sends single messages, not idempotent")
	}
	if c.Consumers < 0 || c.Consumers > 0 && (c.Window == 0 || !c.Consume) {
		return errors.New("load: consumers are SDK push consumers of the consume mode with a window")
	}
	if c.Consumers == 0 && c.Window > 0 && c.Consume {
		c.Consumers = 1
	}
	if c.Idle && (c.Window == 0 || !c.Consume) {
		return errors.New("load: idle runs SDK push consumers of the consume mode (with a window)")
	}
	if c.Transactions && (c.Window > 0 || c.Batch > 1 || c.Idempotent) {
		return errors.New("load: transactions are sent one message at a time, not idempotent, without the SDK window")
	}
	if c.DedupWindow < 0 {
		return errors.New("load: dedup window must not be negative")
	}
	return nil
}

type target struct {
	topic  string
	queue  int
	broker string
}

// Run performs one load run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	ns := remoting.NewClient(cfg.remotingConfig())
	defer ns.Close()
	var targets []target
	var topics []string
	for i := 0; i < cfg.Topics; i++ {
		t := cfg.Topic
		if cfg.Topics > 1 {
			t = fmt.Sprintf("%s-%d", cfg.Topic, i)
		}
		topics = append(topics, t)
		ts, err := ensureTopic(ctx, ns, cfg.Namesrv, t, cfg.Queues, cfg.DedupWindow)
		if err != nil {
			return Result{}, err
		}
		targets = append(targets, ts...)
	}
	conns := make([]*remoting.Client, cfg.Conns)
	for i := range conns {
		conns[i] = remoting.NewClient(cfg.remotingConfig())
		defer conns[i].Close()
	}

	var (
		sent, errs atomic.Int64
		measuring  atomic.Bool
		firstErr   atomic.Pointer[string]
		histMu     sync.Mutex
		sendHist   = hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
		e2eHist    = hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
		consumed   atomic.Int64
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup

	recordE2E := func(born int64) {
		if !measuring.Load() {
			return
		}
		consumed.Add(1)
		us := (time.Now().UnixNano() - born) / 1000
		histMu.Lock()
		_ = e2eHist.RecordValue(max(us, 1))
		histMu.Unlock()
	}
	if cfg.Consume && cfg.Window > 0 {
		stop, err := startSDKConsumers(runCtx, &cfg, topics, recordE2E)
		if err != nil {
			return Result{}, err
		}
		defer stop()
	} else if cfg.Consume {
		cons := remoting.NewClient(cfg.remotingConfig())
		defer cons.Close()
		for _, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				consumeQueue(runCtx, cons, tg, recordE2E)
			}()
		}
	}

	// Pacing: each producer sends at Rate/Producers messages a second.
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Producers*cfg.Batch) / float64(cfg.Rate))
	}
	producers := cfg.Producers
	if cfg.Idle {
		producers = 0
	}
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if cfg.Window > 0 || cfg.Transactions {
				local := hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
				run := runSDKProducer
				if cfg.Transactions {
					run = runTxProducer // tx.go
				}
				err := run(runCtx, &cfg, p, topics, interval, sdkCounters{&sent, &errs, &measuring, &firstErr}, local)
				if err != nil {
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
				}
				histMu.Lock()
				sendHist.Merge(local)
				histMu.Unlock()
				return
			}
			cl := conns[p%len(conns)]
			body := make([]byte, cfg.Size)
			for i := range body {
				body[i] = byte('a' + rand.IntN(26))
			}
			n := p
			next := firstSend(time.Now(), p, cfg.Producers, interval)
			local := hdrhistogram.New(1, int64(60*time.Second/time.Microsecond), 3)
			defer func() {
				histMu.Lock()
				sendHist.Merge(local)
				histMu.Unlock()
			}()
			// One request per producer, reused once the previous one is
			// answered (and so was written).
			var req *remoting.Command
			var batchBody []byte
			var idem *idemSeqs
			if cfg.Idempotent {
				idem = &idemSeqs{id: fmt.Sprintf("bench-%d-%d-%d", os.Getpid(), p, rand.Uint32()), next: map[target]int64{}, epoch: map[string]int32{}}
			}
			for runCtx.Err() == nil {
				if interval > 0 {
					next = next.Add(interval)
					if d := time.Until(next); d > 0 {
						select {
						case <-runCtx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				tg := targets[n%len(targets)]
				n++
				var props []byte
				if idem != nil {
					if err := idem.ensure(runCtx, cl, tg, cfg.SendTimeout); err != nil {
						if measuring.Load() {
							errs.Add(1)
							s := err.Error()
							firstErr.CompareAndSwap(nil, &s)
						}
						continue
					}
				}
				start := time.Now()
				if cfg.Batch == 1 {
					binary.BigEndian.PutUint64(body, uint64(start.UnixNano()))
					if idem != nil {
						props = idem.props(props[:0], tg, 0)
					}
					req = sendRequest(req, tg, body, start, n, props)
				} else {
					binary.BigEndian.PutUint64(body, uint64(start.UnixNano()))
					batchBody, props = appendBatchMessages(batchBody[:0], props, body, start, n, cfg.Batch, idem, tg)
					req = batchRequest(req, tg, batchBody, start)
				}
				resp, err := cl.InvokeTimeout(runCtx, tg.broker, req, cfg.SendTimeout)
				if idem != nil {
					idem.answered(tg, cfg.Batch, err == nil && resp.Code == protocol.RespSuccess)
				}
				if runCtx.Err() != nil {
					return
				}
				if err != nil {
					// Unanswered: its body may still wait to be written,
					// so the next send gets a request of its own.
					req = nil
				}
				if err == nil && resp.Code != protocol.RespSuccess {
					err = fmt.Errorf("code %d: %s", resp.Code, resp.Remark)
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
					continue
				}
				sent.Add(int64(cfg.Batch))
				_ = local.RecordValue(max(time.Since(start).Microseconds(), 1))
			}
		}()
	}

	if cfg.Warmup > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Warmup):
		}
	}
	measuring.Store(true)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	var last int64
	deadline := time.After(cfg.Duration)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case <-tick.C:
			if cfg.Progress != nil {
				cur := sent.Load()
				fmt.Fprintf(cfg.Progress, "%5.0fs  %9d msg/s  sent %d  errors %d  consumed %d\n",
					time.Since(start).Seconds(), cur-last, cur, errs.Load(), consumed.Load())
				last = cur
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start).Seconds()
	measuring.Store(false)
	cancel()
	wg.Wait()

	r := Result{Sent: sent.Load(), Errors: errs.Load(), Seconds: elapsed, Consumed: consumed.Load()}
	r.MsgPerSec = float64(r.Sent) / elapsed
	r.MiBPerSec = r.MsgPerSec * float64(cfg.Size) / (1 << 20)
	r.ConsumePerSec = float64(r.Consumed) / elapsed
	us := func(h *hdrhistogram.Histogram, q float64) time.Duration {
		return time.Duration(h.ValueAtQuantile(q)) * time.Microsecond
	}
	r.SendP50, r.SendP99, r.SendP999 = us(sendHist, 50), us(sendHist, 99), us(sendHist, 99.9)
	r.E2EP50, r.E2EP99, r.E2EP999 = us(e2eHist, 50), us(e2eHist, 99), us(e2eHist, 99.9)
	if p := firstErr.Load(); p != nil {
		r.FirstError = *p
	}
	return r, nil
}

// firstSend is when producer p of n, pacing at interval, sends first:
// producers start interval/n apart, so that together they send evenly
// spaced messages rather than a burst of one each every interval.
func firstSend(now time.Time, p, n int, interval time.Duration) time.Time {
	return now.Add(time.Duration(p) * interval / time.Duration(n))
}
