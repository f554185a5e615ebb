package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestOffsetCommitsSurviveCrash commits rising offsets (UPDATE_CONSUMER_OFFSET,
// one metadata record each) from two connections on a broker whose files
// are on a file system that keeps only synced bytes at a crash, crashes it
// at a random point, and checks that the recovered broker holds, for every
// queue, at least the last acknowledged commit and never more than was
// sent; then crashes the recovered broker again and checks no offset went
// backwards.
func TestOffsetCommitsSurviveCrash(t *testing.T) {
	for seed := uint64(0); seed < 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { offsetCrashOnce(t, seed) })
	}
}

func offsetCrashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x0FF))
	fs := vfs.NewCrashableMem()
	b := vfsBroker(t, fs)
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "oc", ReadQueueNums: 4, WriteQueueNums: 4}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[int32]int64{}
	sent := map[int32]int64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(queues []int32) {
			defer wg.Done()
			c := remoting.NewClient(remoting.ClientConfig{})
			defer c.Close()
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				q := queues[n%2]
				mu.Lock()
				sent[q] = n
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := c.Invoke(ctx, b.Addr(), remoting.NewRequest(protocol.ReqUpdateConsumerOffset, map[string]string{
					"consumerGroup": "cg", "topic": "oc", "queueId": strconv.Itoa(int(q)), "commitOffset": strconv.FormatInt(n, 10),
				}, nil))
				cancel()
				if err != nil || resp.Code != protocol.RespSuccess {
					return
				}
				mu.Lock()
				acked[q] = n
				mu.Unlock()
			}
		}([]int32{int32(2 * w), int32(2*w + 1)})
	}
	target := 20 + rng.IntN(200)
	waitFor(t, 20*time.Second, "commits to reach the crash point", func() bool {
		mu.Lock()
		defer mu.Unlock()
		total := int64(0)
		for _, v := range acked {
			total += v
		}
		return total >= int64(target)
	})
	mu.Lock()
	ackedAt := make(map[int32]int64, len(acked))
	for q, v := range acked {
		ackedAt[q] = v
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
	mu.Unlock()
	close(stop)
	_ = b.Shutdown(context.Background())
	wg.Wait()

	r := vfsBroker(t, crashed)
	got := map[int32]int64{}
	for q, want := range ackedAt {
		off, ok := r.offsets.get("cg", "oc", q)
		if !ok || off < want || off > sent[q] {
			t.Fatalf("queue %d after the crash: offset %d (%v); acknowledged %d, sent at most %d", q, off, ok, want, sent[q])
		}
		// The store holds it too, not only memory.
		view := viewMeta(t, r)
		if view.Offsets[offsetID{"cg", "oc", q}] != off {
			t.Fatalf("queue %d: served %d, stored %d", q, off, view.Offsets[offsetID{"cg", "oc", q}])
		}
		got[q] = off
	}
	// A second crash of the recovered broker, which has done nothing: no
	// offset goes back.
	again := crashed.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	_ = r.Shutdown(context.Background())
	r2 := vfsBroker(t, again)
	for q, want := range got {
		if off, _ := r2.offsets.get("cg", "oc", q); off < want {
			t.Fatalf("queue %d went back from %d to %d after a second crash", q, want, off)
		}
	}
}
