package compat

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// What the kill -9 tests of a replica group record: acknowledged sends,
// deliveries and committed offsets, and how they are summed up.

// noFlowControl keeps a push consumer that reads a backlog from pausing
// its pulls: the official client counts those pauses in fields that every
// queue's pull loop writes without a lock, which the race detector
// reports. The handlers here are fast and the messages small (a run
// sends far fewer than 65535 per queue).
var noFlowControl = []consumer.Option{
	consumer.WithPullThresholdForQueue(65535), // the largest the client takes
	consumer.WithPullThresholdForTopic(6553500),
	consumer.WithConsumeConcurrentlyMaxSpan(65535),
}

// failoverCycles is how many times TestOfficialClientMasterKill kills the
// master: FERRY_COMPAT_FAILOVER_CYCLES, else 20 (5 with -short).
func failoverCycles(t *testing.T) int {
	if s := os.Getenv("FERRY_COMPAT_FAILOVER_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("FERRY_COMPAT_FAILOVER_CYCLES=%q: want a positive number", s)
		}
		return n
	}
	if testing.Short() {
		return 5
	}
	return 20
}

// failoverSeed seeds the random kill points: FERRY_COMPAT_FAILOVER_SEED to
// repeat a run, else the clock.
func failoverSeed(t *testing.T) uint64 {
	if s := os.Getenv("FERRY_COMPAT_FAILOVER_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FERRY_COMPAT_FAILOVER_SEED=%q: want an unsigned number", s)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// ackLog keeps every acknowledged send and, per producer, the first send
// acknowledged among those started after a mark: how long after the mark
// its acknowledgement came and which broker stored it.
type ackLog struct {
	mu        sync.Mutex
	bodies    []string
	fails     int
	since     time.Time
	first     []time.Duration // by producer; 0: none yet
	firstHost []string
}

func newAckLog(producers int) *ackLog {
	return &ackLog{first: make([]time.Duration, producers), firstHost: make([]string, producers)}
}

func (a *ackLog) ok(producer int, started time.Time, body, storeHost string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bodies = append(a.bodies, body)
	if started.After(a.since) && a.first[producer] == 0 {
		a.first[producer] = max(time.Since(a.since), time.Nanosecond)
		a.firstHost[producer] = storeHost
	}
}

func (a *ackLog) failed() {
	a.mu.Lock()
	a.fails++
	a.mu.Unlock()
}

// mark starts a new round: sends started after t count as resumed.
func (a *ackLog) mark(t time.Time) {
	a.mu.Lock()
	a.since = t
	clear(a.first)
	clear(a.firstHost)
	a.mu.Unlock()
}

// resumed returns, per producer, how long after the mark the first
// acknowledgement of a send started after it came (0: not yet) and which
// broker stored that send.
func (a *ackLog) resumed() ([]time.Duration, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.first), slices.Clone(a.firstHost)
}

// earliest is the shortest non-zero duration of ds and its index, or -1.
func earliest(ds []time.Duration) (time.Duration, int) {
	at := -1
	for i, d := range ds {
		if d > 0 && (at < 0 || d < ds[at]) {
			at = i
		}
	}
	if at < 0 {
		return 0, -1
	}
	return ds[at], at
}

func (a *ackLog) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.bodies)
}

// storeHost is the broker address in a send result's offset message id.
func storeHost(res *primitive.SendResult) string {
	id, err := primitive.UnmarshalMsgID([]byte(res.OffsetMsgID))
	if err != nil {
		return "?"
	}
	return net.JoinHostPort(id.Addr, strconv.Itoa(id.Port))
}

// delivery is one message handed to the committing group's handler.
type delivery struct {
	queue    int32
	offset   int64
	body     string
	instance int // which consumer instance of the group
}

type deliveryLog struct {
	mu  sync.Mutex
	all []delivery
}

func (d *deliveryLog) handler(instance int) func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	return func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		d.mu.Lock()
		for _, m := range msgs {
			d.all = append(d.all, delivery{queue: int32(m.Queue.QueueId), offset: m.QueueOffset, body: string(m.Body), instance: instance})
		}
		d.mu.Unlock()
		return consumer.ConsumeSuccess, nil
	}
}

func (d *deliveryLog) snapshot() []delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.all)
}

// raiseTo raises each queue of into to at least from's offset.
func raiseTo(into, from map[int32]int64) {
	for q, off := range from {
		if off > into[q] {
			into[q] = off
		}
	}
}

// snapOf lists per-queue offsets in queue order.
func snapOf(m map[int32]int64) []int64 {
	out := make([]int64, len(m))
	for q, off := range m {
		if int(q) < len(out) {
			out[q] = off
		}
	}
	return out
}

// durations formats min / median / max of ds.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v, median %v, max %v (n=%d)", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}
