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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/internal/poll"
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
					batchBody = batchBody[:0]
					for i := 0; i < cfg.Batch; i++ {
						binary.BigEndian.PutUint64(body, uint64(start.UnixNano()))
						if idem != nil {
							props = idem.props(props[:0], tg, i)
						}
						batchBody = appendBatchMessage(batchBody, body, props)
					}
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

// ensureTopic creates topic with queues on every broker of the cluster if
// the name server has no route, and returns its queues.
func ensureTopic(ctx context.Context, ns *remoting.Client, nsAddr, topic string, queues int, dedup time.Duration) ([]target, error) {
	route, err := remoting.GetRouteInfo(ctx, ns, nsAddr, topic)
	if err != nil {
		var re *remoting.ResponseError
		if !errors.As(err, &re) || re.Code != protocol.RespTopicNotExist {
			return nil, fmt.Errorf("load: route of %s from %s: %w", topic, nsAddr, err)
		}
		resp, err := ns.Invoke(ctx, nsAddr, remoting.NewRequest(protocol.ReqGetBrokerClusterInfo, nil, nil))
		if err != nil {
			return nil, fmt.Errorf("load: cluster info: %w", err)
		}
		var ci remoting.ClusterInfo
		if err := remoting.DecodeBody(resp.Body, &ci); err != nil {
			return nil, err
		}
		if len(ci.BrokerAddrTable) == 0 {
			return nil, fmt.Errorf("load: no broker registered with %s", nsAddr)
		}
		for _, bd := range ci.BrokerAddrTable {
			addr := bd.BrokerAddrs[0]
			q := strconv.Itoa(queues)
			ext := map[string]string{"topic": topic, "readQueueNums": q, "writeQueueNums": q, "perm": "6"}
			if dedup > 0 {
				ext["dedupWindow"] = strconv.FormatInt(dedup.Milliseconds(), 10)
			}
			resp, err := ns.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, ext, nil))
			if err == nil {
				err = resp.Err()
			}
			if err != nil {
				return nil, fmt.Errorf("load: create %s on %s: %w", topic, addr, err)
			}
		}
		// The broker re-registers at once; wait for the route.
		_ = poll.Until(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			route, err = remoting.GetRouteInfo(ctx, ns, nsAddr, topic)
			return err == nil
		})
		if err != nil {
			return nil, fmt.Errorf("load: route of new topic %s: %w", topic, err)
		}
	}
	addrs := map[string]string{}
	for _, bd := range route.BrokerDatas {
		addrs[bd.BrokerName] = bd.BrokerAddrs[0]
	}
	var out []target
	for _, qd := range route.QueueDatas {
		for q := 0; q < int(qd.WriteQueueNums); q++ {
			out = append(out, target{topic: topic, queue: q, broker: addrs[qd.BrokerName]})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load: topic %s has no writable queue", topic)
	}
	return out, nil
}

// firstSend is when producer p of n, pacing at interval, sends first:
// producers start interval/n apart, so that together they send evenly
// spaced messages rather than a burst of one each every interval.
func firstSend(now time.Time, p, n int, interval time.Duration) time.Time {
	return now.Add(time.Duration(p) * interval / time.Duration(n))
}

// sendRequest fills req (nil: a new one) as a SEND_MESSAGE_V2 of body to
// tg, with a unique key made of the send time and the producer's counter.
// extra, when not empty, is more wire-form properties.
func sendRequest(req *remoting.Command, tg target, body []byte, now time.Time, n int, extra []byte) *remoting.Command {
	var props [160]byte
	p := append(props[:0], "UNIQ_KEY\x01"...)
	p = appendHex16(p, uint64(now.UnixNano()))
	p = appendHex16(p, uint64(n))
	if len(extra) > 0 {
		p = append(append(p, protocol.PropertySep), extra...)
	}
	return v2Request(req, protocol.ReqSendMessageV2, tg, body, now, string(p), false)
}

// idemSeqs is one sending goroutine's idempotent producer state: its
// epoch per broker and next sequence per queue.
type idemSeqs struct {
	id    string
	epoch map[string]int32 // by broker address
	next  map[target]int64
}

// ensure starts the producer on tg's broker (INIT_PRODUCER_ID) once, or
// again after a send whose outcome is unknown.
func (s *idemSeqs) ensure(ctx context.Context, cl *remoting.Client, tg target, timeout time.Duration) error {
	if _, ok := s.epoch[tg.broker]; ok {
		return nil
	}
	resp, err := cl.InvokeTimeout(ctx, tg.broker, remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": s.id}, nil), timeout)
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return fmt.Errorf("INIT_PRODUCER_ID: code %d: %s", resp.Code, resp.Remark)
	}
	var body remoting.InitProducerIDResponse
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return err
	}
	s.epoch[tg.broker] = body.Epoch
	for t := range s.next {
		if t.broker == tg.broker {
			delete(s.next, t)
		}
	}
	for _, q := range body.Queues {
		s.next[target{topic: q.Topic, queue: int(q.QueueID), broker: tg.broker}] = q.LastSeq + 1
	}
	return nil
}

// props appends message i's producer properties for a send to tg.
func (s *idemSeqs) props(dst []byte, tg target, i int) []byte {
	dst = protocol.AppendProperty(dst, protocol.PropProducerID, s.id)
	dst = protocol.AppendProperty(dst, protocol.PropProducerEpoch, strconv.Itoa(int(s.epoch[tg.broker])))
	return protocol.AppendProperty(dst, protocol.PropProducerSeq, strconv.FormatInt(s.next[tg]+int64(i), 10))
}

// answered moves tg's sequence past a stored send of n messages; after a
// failure the broker is asked again.
func (s *idemSeqs) answered(tg target, n int, ok bool) {
	if ok {
		s.next[tg] += int64(n)
		return
	}
	delete(s.epoch, tg.broker)
}

// batchRequest fills req (nil: a new one) as a SEND_BATCH_MESSAGE of body
// to tg.
func batchRequest(req *remoting.Command, tg target, body []byte, now time.Time) *remoting.Command {
	return v2Request(req, protocol.ReqSendBatchMessage, tg, body, now, "", true)
}

// v2Request fills req (nil: a new one of code) with the one-letter header
// names the Java client sends for both codes, and body.
func v2Request(req *remoting.Command, code int16, tg target, body []byte, now time.Time, props string, batch bool) *remoting.Command {
	if req == nil {
		req = remoting.NewRequest(code, make(map[string]string, 16), nil)
	}
	ext := req.ExtFields
	ext["a"], ext["b"], ext["c"], ext["d"], ext["e"], ext["f"] = "ferry-bench", tg.topic, protocol.AutoCreateTopicTemplate, "4", strconv.Itoa(tg.queue), "0"
	ext["g"], ext["h"], ext["i"], ext["j"], ext["k"], ext["l"] = strconv.FormatInt(now.UnixMilli(), 10), "0", props, "0", "false", "0"
	ext["m"] = strconv.FormatBool(batch)
	req.Body = append(req.Body[:0], body...)
	return req
}

// appendHex16 appends v as 16 upper-case hex digits.
func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[v>>uint(shift)&0xF])
	}
	return dst
}

// appendBatchMessage encodes one member of a SEND_BATCH_MESSAGE body.
func appendBatchMessage(dst, body, props []byte) []byte {
	be := binary.BigEndian
	dst = be.AppendUint32(dst, uint32(22+len(body)+len(props)))
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	dst = be.AppendUint16(dst, uint16(len(props)))
	return append(dst, props...)
}

// consumeQueue long-polls one queue from its current end, calling seen
// with the born time of every message.
func consumeQueue(ctx context.Context, cl *remoting.Client, tg target, seen func(born int64)) {
	off := int64(-1)
	for ctx.Err() == nil {
		if off < 0 {
			resp, err := cl.Invoke(ctx, tg.broker, remoting.NewRequest(protocol.ReqGetMaxOffset,
				map[string]string{"topic": tg.topic, "queueId": strconv.Itoa(tg.queue)}, nil))
			if err != nil {
				return
			}
			off, _ = resp.Int64("offset")
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cl.Invoke(pctx, tg.broker, remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
			"consumerGroup": "ferry-bench", "topic": tg.topic, "queueId": strconv.Itoa(tg.queue),
			"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "64", "sysFlag": "6", "commitOffset": "0",
			"suspendTimeoutMillis": "15000", "subscription": "*", "subVersion": "0", "expressionType": "TAG",
		}, nil))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if n, err := resp.Int64("nextBeginOffset"); err == nil {
			off = n
		}
		for b := resp.Body; len(b) > 0; {
			rec, err := protocol.Decode(b)
			if err != nil {
				break
			}
			if len(rec.Body) >= 8 {
				seen(int64(binary.BigEndian.Uint64(rec.Body)))
			}
			b = b[rec.Size:]
		}
	}
}

// cmdFlags are the values of Main's flags.
type cmdFlags struct {
	cfg        Config
	quiet      bool
	cpuProfile string
	tls        bool   // connect with TLS
	caFile     string // CA to trust with tls
	insecure   bool   // tls without verifying the server
}

func defineFlags(fs *flag.FlagSet, f *cmdFlags) {
	cfg := &f.cfg
	fs.StringVar(&cfg.Namesrv, "namesrv", "127.0.0.1:9876", "name server ip:port")
	fs.StringVar(&cfg.Topic, "topic", "BenchTopic", "topic (with --topics N: topic-0 … topic-N-1)")
	fs.IntVar(&cfg.Topics, "topics", 1, "number of topics")
	fs.IntVar(&cfg.Queues, "queues", 8, "queues per topic when creating it")
	fs.IntVar(&cfg.Producers, "producers", 4, "concurrent producers")
	fs.IntVar(&cfg.Conns, "conns", 0, "connections the producers share (default min(producers, 4))")
	fs.IntVar(&cfg.Size, "size", 1024, "message body bytes")
	fs.IntVar(&cfg.Batch, "batch", 1, "messages per send (1: single sends)")
	fs.IntVar(&cfg.Rate, "rate", 0, "total messages per second (0: flat out)")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Second, "measured time")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "unmeasured warm-up")
	fs.BoolVar(&cfg.Idempotent, "idempotent", false, "idempotent sends (producer id, epoch and sequence on every message)")
	fs.IntVar(&cfg.Window, "sdk-window", 0, "send through the SDK: SendAsync per message, at most this many unanswered per producer (0: raw remoting requests)")
	fs.DurationVar(&cfg.Linger, "sdk-linger", 0, "the SDK's linger time with --sdk-window")
	fs.IntVar(&cfg.Consumers, "sdk-consumers", 0, "consume with --sdk-window: this many SDK push consumers, each its own group (default 1)")
	fs.IntVar(&cfg.PullBatch, "sdk-pull-batch", 0, "consume with --sdk-window: the push consumers' pull batch size (0: the SDK's default)")
	fs.BoolVar(&cfg.Idle, "idle", false, "consume with --sdk-window: no producers, the consumers' long polls held for --duration")
	fs.DurationVar(&cfg.DedupWindow, "dedup-window", 0, "create the topics with this dedup window (0: off; a topic that exists keeps its own)")
	fs.BoolVar(&cfg.Transactions, "transactions", false, "send each message as a transaction committed at once (SDK SendInTransaction, one at a time per producer)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	fs.StringVar(&cfg.Credentials.AccessKey, "access-key", os.Getenv("FERRY_ACCESS_KEY"), "ACL access key to authenticate with (env FERRY_ACCESS_KEY)")
	fs.BoolVar(&cfg.SignRequests, "sign-requests", false, "sign every request instead of authenticating each connection once")
	fs.StringVar(&cfg.Credentials.SecretKey, "secret-key", os.Getenv("FERRY_SECRET_KEY"), "ACL secret key (env FERRY_SECRET_KEY)")
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS")
	fs.StringVar(&f.caFile, "ca", "", "CA certificate (PEM) to trust with --tls")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "--tls without verifying the server (development only)")
}

// FlagSet returns the flags Main parses, with their defaults and usage,
// for a command line that lists them in its own style.
func FlagSet(mode string) *flag.FlagSet {
	fs := flag.NewFlagSet("ferry bench "+mode, flag.ContinueOnError)
	defineFlags(fs, &cmdFlags{})
	return fs
}

// Main runs `ferry bench produce|consume` with its own flags and prints
// the result; it returns the exit code.
func Main(mode string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f cmdFlags
	defineFlags(fs, &f)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, quiet, cpuProfile := f.cfg, &f.quiet, &f.cpuProfile
	if (cfg.Credentials.AccessKey == "") != (cfg.Credentials.SecretKey == "") {
		fmt.Fprintln(stderr, "ferry bench: --access-key and --secret-key go together")
		return 2
	}
	if f.tls || f.caFile != "" || f.insecure {
		tc, err := certs.Client(f.caFile, f.insecure, "", "")
		if err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		cfg.TLS = tc
	}
	cfg.Consume = mode == "consume"
	if err := cfg.defaults(); err != nil {
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 2
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 1
	}
	fmt.Fprint(stdout, Format(cfg, r))
	if r.Sent == 0 && !cfg.Idle {
		return 1
	}
	return 0
}

// Format renders a result as a few aligned lines.
func Format(cfg Config, r Result) string {
	var b strings.Builder
	if cfg.Idle {
		fmt.Fprintf(&b, "idle sdk consumers=%d topics=%d queues=%d for %.1fs\n", cfg.Consumers, cfg.Topics, cfg.Queues, r.Seconds)
		return b.String()
	}
	if cfg.Window > 0 {
		fmt.Fprintf(&b, "sdk producers=%d window=%d linger=%v size=%d topics=%d queues=%d rate=%d consumers=%d\n",
			cfg.Producers, cfg.Window, cfg.Linger, cfg.Size, cfg.Topics, cfg.Queues, cfg.Rate, cfg.Consumers)
	} else {
		fmt.Fprintf(&b, "producers=%d conns=%d size=%d batch=%d topics=%d queues=%d rate=%d idempotent=%t\n",
			cfg.Producers, cfg.Conns, cfg.Size, cfg.Batch, cfg.Topics, cfg.Queues, cfg.Rate, cfg.Idempotent)
	}
	fmt.Fprintf(&b, "produced   %d msgs in %.1fs: %.0f msg/s, %.1f MiB/s, errors %d\n", r.Sent, r.Seconds, r.MsgPerSec, r.MiBPerSec, r.Errors)
	fmt.Fprintf(&b, "send rtt   p50 %v  p99 %v  p99.9 %v\n", r.SendP50, r.SendP99, r.SendP999)
	if cfg.Consume {
		fmt.Fprintf(&b, "consumed   %d msgs: %.0f msg/s\n", r.Consumed, r.ConsumePerSec)
		fmt.Fprintf(&b, "end to end p50 %v  p99 %v  p99.9 %v\n", r.E2EP50, r.E2EP99, r.E2EP999)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}
