package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// crashTopics are the topics the crash workload sends to; crashDelayTopic
// gets only delayed messages.
var crashTopics = []string{"ct0", "ct1", "ct2"}

const (
	crashDelayTopic = "cdelay"
	crashGroup      = "ccg"
	crashQueues     = 4
)

// vfsBroker starts a broker whose every file lives on fs, in sync-flush
// mode with short delay levels.
func vfsBroker(t *testing.T, fs vfs.FS) *Broker {
	t.Helper()
	return testBrokerWith(t, "data", func(cfg *Config) {
		cfg.SegmentSize = 1 << 20
		cfg.MaxMessageSize = 16 << 10
		cfg.Flush = "sync"
		cfg.DefaultTopicQueueNums = crashQueues
		cfg.DelayLevels = "20ms 40ms 60ms 80ms 100ms"
	}, WithFS(fs))
}

// ackedSend is a send the broker acknowledged.
type ackedSend struct {
	topic       string
	queue       int32
	queueOffset int64
	uniq, key   string
	body        string
	realTopic   string // delayed and sent-back messages: where they must arrive
}

// crashWorkload is what the workload saw acknowledged, guarded by mu.
type crashWorkload struct {
	mu      sync.Mutex
	sends   []ackedSend
	delayed []ackedSend
	// committed holds every offset committed per queue; synced, the
	// highest committed before a flush of the offsets returned.
	committed map[offsetID]map[int64]bool
	synced    map[offsetID]int64
	latest    map[offsetID]int64
}

// TestBrokerCrash runs sends, pulls, offset commits, delayed sends and
// send-backs against a broker whose files are all on a file system that
// keeps only synced bytes at a crash, crashes it at a random point, and
// checks the broker recovered from what survived: every acknowledged send
// is readable, the consume queues and the key index agree with the log,
// committed offsets did not go back past a flush, and every acknowledged
// delayed message is delivered to its real topic.
func TestBrokerCrash(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { brokerCrashOnce(t, uint64(seed)) })
	}
}

func brokerCrashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xB0C))
	fs := vfs.NewCrashableMem()
	b := vfsBroker(t, fs)
	w := &crashWorkload{committed: map[offsetID]map[int64]bool{}, synced: map[offsetID]int64{}, latest: map[offsetID]int64{}}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.produce(t, b, seed, stop) }()
	go func() { defer wg.Done(); w.consume(t, b, seed, stop) }()

	// Crash once a random number of sends is acknowledged.
	target := 20 + rng.IntN(150)
	waitFor(t, 20*time.Second, "the workload to reach the crash point", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.sends)+len(w.delayed) >= target
	})
	w.mu.Lock()
	sends := append([]ackedSend(nil), w.sends...)
	delayed := append([]ackedSend(nil), w.delayed...)
	synced := make(map[offsetID]int64, len(w.synced))
	for id, v := range w.synced {
		synced[id] = v
	}
	// Some of what was not synced may survive too, torn tails included.
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
	w.mu.Unlock()
	close(stop)
	wg.Wait()
	_ = b.Shutdown(context.Background())

	r := vfsBroker(t, crashed)
	t.Logf("crashed after %d sends, %d delayed or sent back, %d flushed offsets; recovered log end %d of %d", len(sends), len(delayed), len(synced), r.clog.WrittenOffset(), b.clog.WrittenOffset())
	checkSendsSurvived(t, r, sends)
	checkQueuesAgreeWithLog(t, r)
	checkKeyIndexAgreesWithLog(t, r)
	w.mu.Lock()
	checkOffsetsKept(t, r, synced, w.committed)
	w.mu.Unlock()
	checkDelayedDelivered(t, r, delayed)
}

// produce sends plain, delayed and timer messages until stop.
func (w *crashWorkload) produce(t *testing.T, b *Broker, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 1))
	c := remoting.NewClient(remoting.ClientConfig{})
	defer c.Close()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		m := ackedSend{topic: crashTopics[rng.IntN(len(crashTopics))], queue: int32(rng.IntN(crashQueues)),
			uniq: fmt.Sprintf("U%d-%d", seed, i), key: fmt.Sprintf("K%d", i%7), body: fmt.Sprintf("body %d/%d", seed, i)}
		props := map[string]string{protocol.PropUniqKey: m.uniq, protocol.PropKeys: m.key}
		switch rng.IntN(6) {
		case 0:
			m.realTopic, m.topic = crashDelayTopic, crashDelayTopic
			props[protocol.PropDelayLevel] = strconv.Itoa(1 + rng.IntN(3))
		case 1:
			m.realTopic, m.topic = crashDelayTopic, crashDelayTopic
			props[protocol.PropTimerDelayMS] = strconv.Itoa(1000 + rng.IntN(200))
		}
		resp, err := invokeSend(c, b.Addr(), m.topic, int(m.queue), m.body, props)
		if err != nil || resp.Code != protocol.RespSuccess {
			return // the broker is shutting down after the crash
		}
		w.mu.Lock()
		if m.realTopic != "" {
			w.delayed = append(w.delayed, m)
		} else {
			m.queueOffset, _ = strconv.ParseInt(resp.StringOr("queueOffset", "-1"), 10, 64)
			w.sends = append(w.sends, m)
		}
		w.mu.Unlock()
	}
}

func invokeSend(c *remoting.Client, addr, topic string, queue int, body string, props map[string]string) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": "pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": strconv.Itoa(crashQueues),
		"queueId": strconv.Itoa(queue), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(protocol.EncodeProperties(props)), "reconsumeTimes": "0",
		"unitMode": "false", "batch": "false",
	}, []byte(body)))
}

// consume pulls the plain topics, commits offsets, sends some messages
// back (retries through the delay levels), and now and then flushes the
// offsets, until stop.
func (w *crashWorkload) consume(t *testing.T, b *Broker, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 2))
	c := remoting.NewClient(remoting.ClientConfig{})
	defer c.Close()
	next := map[offsetID]int64{}
	invoke := func(req *remoting.Command) (*remoting.Command, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Invoke(ctx, b.Addr(), req)
		return resp, err == nil && resp.Code == protocol.RespSuccess
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := offsetID{crashGroup, crashTopics[rng.IntN(len(crashTopics))], int32(rng.IntN(crashQueues))}
		resp, err := func() (*remoting.Command, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return c.Invoke(ctx, b.Addr(), remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
				"consumerGroup": crashGroup, "topic": id.topic, "queueId": strconv.Itoa(int(id.queue)),
				"queueOffset": strconv.FormatInt(next[id], 10), "maxMsgNums": "8", "sysFlag": strconv.Itoa(pullSubscription),
				"commitOffset": "0", "suspendTimeoutMillis": "0", "subscription": "*", "subVersion": "0", "expressionType": "TAG",
			}, nil))
		}()
		if err != nil {
			return
		}
		if resp.Code != protocol.RespSuccess {
			continue // nothing new, or the topic does not exist yet
		}
		var recs []protocol.Record
		for body := resp.Body; len(body) > 0; {
			r, err := protocol.Decode(body)
			if err != nil {
				t.Errorf("pulled a record that does not decode: %v", err)
				return
			}
			recs = append(recs, r)
			body = body[r.Size:]
		}
		for _, r := range recs {
			if rng.IntN(5) != 0 {
				continue
			}
			uniq, _ := r.Property(protocol.PropUniqKey)
			if _, ok := invoke(remoting.NewRequest(protocol.ReqConsumerSendMsgBack, map[string]string{
				"group": crashGroup, "offset": strconv.FormatInt(r.PhysicalOffset, 10), "delayLevel": "0",
				"originMsgId": "X", "originTopic": id.topic, "unitMode": "false", "maxReconsumeTimes": "16",
			}, nil)); !ok {
				return
			}
			w.mu.Lock()
			w.delayed = append(w.delayed, ackedSend{uniq: uniq, realTopic: protocol.RetryTopic(crashGroup), body: string(r.Body)})
			w.mu.Unlock()
		}
		n, err := strconv.ParseInt(resp.StringOr("nextBeginOffset", "0"), 10, 64)
		if err != nil {
			continue
		}
		next[id] = n
		if _, ok := invoke(remoting.NewRequest(protocol.ReqUpdateConsumerOffset, map[string]string{
			"consumerGroup": crashGroup, "topic": id.topic, "queueId": strconv.Itoa(int(id.queue)), "commitOffset": strconv.FormatInt(n, 10),
		}, nil)); !ok {
			return
		}
		w.mu.Lock()
		if w.committed[id] == nil {
			w.committed[id] = map[int64]bool{}
		}
		w.committed[id][n] = true
		w.latest[id] = n
		w.mu.Unlock()
		if rng.IntN(4) == 0 {
			// A flush: what was committed before it must survive.
			w.mu.Lock()
			before := make(map[offsetID]int64, len(w.latest))
			for k, v := range w.latest {
				before[k] = v
			}
			w.mu.Unlock()
			if err := b.offsets.flush(); err != nil {
				return
			}
			w.mu.Lock()
			for k, v := range before {
				w.synced[k] = max(w.synced[k], v)
			}
			w.mu.Unlock()
		}
	}
}

func checkSendsSurvived(t *testing.T, b *Broker, sends []ackedSend) {
	t.Helper()
	for _, m := range sends {
		es, err := b.cq.Get(m.topic, m.queue, m.queueOffset, 1, nil)
		if err != nil || len(es) != 1 || es[0].QueueOffset != m.queueOffset {
			t.Fatalf("acknowledged %s/%d #%d (%s) not in its queue after the crash: %v %v", m.topic, m.queue, m.queueOffset, m.uniq, es, err)
		}
		rec, _, err := b.clog.ReadRecord(es[0].Offset, nil)
		if err != nil || string(rec.Body) != m.body {
			t.Fatalf("acknowledged %s/%d #%d: the log holds %q (%v), want %q", m.topic, m.queue, m.queueOffset, rec.Body, err, m.body)
		}
		raw, err := b.messages.byID(m.uniq)
		if err != nil {
			t.Fatalf("acknowledged %s not found by id after the crash: %v", m.uniq, err)
		}
		if r, err := protocol.Decode(raw); err != nil || string(r.Body) != m.body {
			t.Fatalf("message id %s finds %q (%v), want %q", m.uniq, r.Body, err, m.body)
		}
		byKey, err := b.messages.byKey(m.topic, m.key, 0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, raw := range byKey {
			if r, err := protocol.Decode(raw); err == nil && string(r.Body) == m.body {
				found = true
			}
		}
		if !found {
			t.Fatalf("acknowledged %s not found by key %s after the crash", m.uniq, m.key)
		}
	}
}

// checkQueuesAgreeWithLog: every consume-queue entry points at its own
// record, below the log's end, and every record in the log has its entry.
func checkQueuesAgreeWithLog(t *testing.T, b *Broker) {
	t.Helper()
	// The delay service appends while this runs: an entry is checked
	// against the log's end after it was read, the log against the
	// queues up to an end they reached.
	end := b.clog.WrittenOffset()
	waitFor(t, 10*time.Second, "dispatch to the log's end", func() bool { return b.cq.DispatchedOffset() >= end })
	for _, topic := range b.cq.Topics() {
		for _, q := range b.cq.Queues(topic) {
			lo, err := b.cq.MinOffset(topic, q)
			if err != nil {
				t.Fatal(err)
			}
			for off := lo; off < b.cq.MaxOffset(topic, q); off++ {
				es, err := b.cq.Get(topic, q, off, 1, nil)
				if err != nil || len(es) != 1 {
					t.Fatalf("%s/%d #%d: %v %v", topic, q, off, es, err)
				}
				e := es[0]
				if e.Size == 0 {
					continue
				}
				if logEnd := b.clog.WrittenOffset(); e.Offset+int64(e.Size) > logEnd {
					t.Fatalf("%s/%d #%d points past the log's end %d: %+v", topic, q, off, logEnd, e)
				}
				rec, _, err := b.clog.ReadRecord(e.Offset, nil)
				if err != nil || string(rec.Topic) != topic || rec.QueueID != q || rec.QueueOffset != off {
					t.Fatalf("%s/%d #%d points at %s/%d #%d (%v)", topic, q, off, rec.Topic, rec.QueueID, rec.QueueOffset, err)
				}
			}
		}
	}
	var buf []byte
	if _, err := b.clog.Scan(b.clog.MinOffset(), end, &buf, func(off int64, raw []byte) error {
		r, err := protocol.Decode(raw)
		if err != nil || r.QueueOffset < 0 {
			return nil
		}
		es, err := b.cq.Get(string(r.Topic), r.QueueID, r.QueueOffset, 1, nil)
		if err != nil || len(es) != 1 || es[0].Offset != off {
			return fmt.Errorf("record at %d (%s/%d #%d) has entry %v (%v)", off, r.Topic, r.QueueID, r.QueueOffset, es, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// checkKeyIndexAgreesWithLog: every key-index entry points at a record
// below the log's end, and every record with a unique key is found by it.
func checkKeyIndexAgreesWithLog(t *testing.T, b *Broker) {
	t.Helper()
	end := b.clog.WrittenOffset()
	for _, p := range []string{keyPrefix, uniqPrefix} {
		it, err := b.meta.db.NewIter(&pebble.IterOptions{LowerBound: []byte(p), UpperBound: prefixEnd(p)})
		if err != nil {
			t.Fatal(err)
		}
		for ok := it.First(); ok; ok = it.Next() {
			var off int64
			if p == keyPrefix {
				k := it.Key()
				off = int64(binary.BigEndian.Uint64(k[len(k)-8:]))
			} else {
				off = int64(binary.BigEndian.Uint64(it.Value()))
			}
			if logEnd := b.clog.WrittenOffset(); off >= logEnd {
				it.Close()
				t.Fatalf("key index entry %q points at %d, past the log's end %d", it.Key(), off, logEnd)
			}
			if _, _, err := b.clog.ReadRecord(off, nil); err != nil {
				it.Close()
				t.Fatalf("key index entry %q points at %d, not a record: %v", it.Key(), off, err)
			}
		}
		it.Close()
	}
	// The index lags the queues by a feed: poll.
	var missing error
	if poll.Until(context.Background(), 10*time.Second, 5*time.Millisecond, func() bool {
		missing = uniqKeysMissing(b, end)
		return missing == nil
	}) != nil {
		t.Fatal(missing)
	}
}

// uniqKeysMissing returns an error naming a record below end that the key
// index does not find by its unique key.
func uniqKeysMissing(b *Broker, end int64) error {
	var buf []byte
	_, err := b.clog.Scan(b.clog.MinOffset(), end, &buf, func(off int64, raw []byte) error {
		r, err := protocol.Decode(raw)
		if err != nil {
			return nil
		}
		uniq, ok := r.Property(protocol.PropUniqKey)
		if !ok {
			return nil
		}
		got, err := b.messages.byID(uniq)
		if err != nil {
			return fmt.Errorf("record at %d (%s) not found by its id: %w", off, uniq, err)
		}
		if g, err := protocol.Decode(got); err != nil || !bytes.Equal(g.Body, r.Body) {
			return fmt.Errorf("id %s finds another body", uniq)
		}
		return nil
	})
	return err
}

// checkOffsetsKept: a committed offset after the crash is one that was
// committed, not below the last one a flush covered.
func checkOffsetsKept(t *testing.T, b *Broker, synced map[offsetID]int64, committed map[offsetID]map[int64]bool) {
	t.Helper()
	for id, want := range synced {
		got, ok := b.offsets.get(id.group, id.topic, id.queue)
		if !ok || got < want {
			t.Fatalf("offset of %v went back to %d (%v) after a flush of %d", id, got, ok, want)
		}
	}
	for id := range committed {
		if got, ok := b.offsets.get(id.group, id.topic, id.queue); ok && !committed[id][got] {
			t.Fatalf("offset of %v is %d after the crash, never committed", id, got)
		}
	}
}

// checkDelayedDelivered: every acknowledged delayed or sent-back message
// arrives in its real topic.
func checkDelayedDelivered(t *testing.T, b *Broker, delayed []ackedSend) {
	t.Helper()
	want := map[string]map[string]bool{} // real topic → unique keys
	for _, m := range delayed {
		if want[m.realTopic] == nil {
			want[m.realTopic] = map[string]bool{}
		}
		want[m.realTopic][m.uniq] = true
	}
	var buf []byte
	waitFor(t, 20*time.Second, "every delayed message to be delivered", func() bool {
		for topic, keys := range want {
			for _, q := range b.cq.Queues(topic) {
				es, err := b.cq.Get(topic, q, 0, 1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range es {
					var rec protocol.Record
					rec, buf, err = b.clog.ReadRecord(e.Offset, buf)
					if err != nil {
						continue
					}
					if u, ok := rec.Property(protocol.PropUniqKey); ok {
						delete(keys, u)
					}
				}
			}
			if len(keys) > 0 {
				return false
			}
		}
		return true
	})
}
