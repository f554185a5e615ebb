package broker

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

// routeSpecial leaves messages as they are: no delay or timer here.
func (logSender) routeSpecial(*commitlog.Message, *sendHeader) error { return nil }

// txnService builds a transaction service over the stores and a consume
// queue store of their log, with cfg.
func (st *eosStores) txnService(t *testing.T, cfg Config) *txnService {
	t.Helper()
	cq, err := consumequeue.Open(consumequeue.Options{FS: st.fs, Dir: "consumequeue", Source: newCommitSource(st.clog, false), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cq.Close(); err != nil {
			t.Error(err)
		}
	})
	perm := int32(protocol.PermRead | protocol.PermWrite)
	for _, name := range []string{"tx", protocol.TransHalfTopic, protocol.TransOpHalfTopic, protocol.TransCheckMaxTimeTopic} {
		st.topics.applyPut(TopicConfig{TopicName: name, ReadQueueNums: 1, WriteQueueNums: 1, Perm: perm})
	}
	s := &txnService{clog: st.clog, cq: cq, meta: st.meta, topics: st.topics, clients: newClientRegistry(), log: zerolog.Nop(),
		cfg: func() *Config { return &cfg }, host: func() netip.AddrPort { return testStoreHost },
		writable: func() string { return "" }, send: logSender{st.clog}}
	if err := s.open(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	return s
}

// sendHalf stores body as a half for tx/0 of producer group pg and
// returns its commitlog offset and when it was stored.
func sendHalf(t *testing.T, s *txnService, body string) (int64, time.Time) {
	t.Helper()
	m := commitlog.Message{Topic: "tx", Body: []byte(body), StoreHost: testStoreHost, BornHost: testStoreHost,
		Properties: protocol.EncodeProperties(map[string]string{protocol.PropTransaction: "true", protocol.PropUniqKey: "U-" + body})}
	half, err := s.routeHalf(&m, &sendHeader{producerGroup: "pg"}, false)
	if err != nil || !half {
		t.Fatalf("route half: %v %v", half, err)
	}
	var res []commitlog.AppendResult
	s.send.appendMessages([]commitlog.Message{m}, func(r []commitlog.AppendResult, err error) {
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r...)
	})
	return res[0].Offset, time.UnixMilli(res[0].StoreTimestamp)
}

// waitIndexed waits until the consume queues index the log up to end.
func waitIndexed(t *testing.T, cq *consumequeue.Store, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cq.WaitDispatched(ctx, end); err != nil {
		t.Fatal(err)
	}
}

// queueBodies returns the bodies of topic/0 once the log is indexed.
func queueBodies(t *testing.T, s *txnService, topic string) []string {
	t.Helper()
	waitIndexed(t, s.cq, s.clog.WrittenOffset())
	var out []string
	if err := s.readQueue(topic, 0, func(r *protocol.Record) { out = append(out, string(r.Body)) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func endHeader(off int64, how int32) endTxnHeader {
	return endTxnHeader{producerGroup: "pg", commitLogOffset: off, commitOrRollback: how, tranStateTableOffset: -1}
}

func TestTxnServiceCommitAndRollback(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	s := st.txnService(t, DefaultConfig())
	commit, _ := sendHalf(t, s, "commit")
	rollback, _ := sendHalf(t, s, "rollback")
	if got := queueBodies(t, s, "tx"); len(got) != 0 {
		t.Fatalf("halves are visible: %q", got)
	}
	if open, err := s.list(); err != nil || len(open) != 2 || open[0].CommitLogOffset != commit || open[0].Topic != "tx" {
		t.Fatalf("open transactions %+v %v", open, err)
	}
	if done, err := s.end(endHeader(commit, protocol.TransactionCommit)); err != nil || !done {
		t.Fatalf("commit: %v %v", done, err)
	}
	if done, err := s.end(endHeader(rollback, protocol.TransactionRollback)); err != nil || !done {
		t.Fatalf("rollback: %v %v", done, err)
	}
	if got := queueBodies(t, s, "tx"); len(got) != 1 || got[0] != "commit" {
		t.Fatalf("after commit and rollback tx holds %q", got)
	}
	if done, err := s.end(endHeader(commit, protocol.TransactionRollback)); err != nil || done {
		t.Fatalf("ending a closed transaction again: %v %v, want nothing done", done, err)
	}
	if _, err := s.end(endTxnHeader{producerGroup: "other", commitLogOffset: rollback + 1, commitOrRollback: protocol.TransactionCommit, tranStateTableOffset: -1}); err == nil {
		t.Fatal("an offset that is no half was ended")
	}
	if open, err := s.list(); err != nil || len(open) != 0 {
		t.Fatalf("open after ending both: %+v %v", open, err)
	}
}

func TestTxnServiceChecksBackAfterTimeout(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	cfg := DefaultConfig()
	cfg.TransactionTimeout = Duration(time.Minute)
	cfg.TransactionCheckMax = 2
	s := st.txnService(t, cfg)
	off, stored := sendHalf(t, s, "unknown")
	checks := func() int {
		open, err := s.list()
		if err != nil || len(open) > 1 {
			t.Fatalf("open %+v %v", open, err)
		}
		if len(open) == 0 {
			return -1
		}
		return open[0].Checks
	}
	s.checkRound(stored.Add(30 * time.Second))
	if n := checks(); n != 0 {
		t.Fatalf("checked %d times before the timeout", n)
	}
	s.checkRound(stored.Add(time.Minute))
	if n := checks(); n != 1 {
		t.Fatalf("checked %d times after the timeout, want 1", n)
	}
	h, _ := s.tab.get(off)
	req, err := s.checkRequest(h)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := protocol.Decode(req.Body)
	if err != nil || req.Code != protocol.ReqCheckTransactionState || string(rec.Topic) != "tx" || string(rec.Body) != "unknown" ||
		req.StringOr("commitLogOffset", "") != strconv.FormatInt(off, 10) {
		t.Fatalf("check request code %d offset %s, record %s %q %v", req.Code, req.StringOr("commitLogOffset", ""), rec.Topic, rec.Body, err)
	}
	s.checkRound(stored.Add(2 * time.Minute))
	if n := checks(); n != 2 {
		t.Fatalf("checked %d times after two rounds, want 2", n)
	}
	// Checked transaction_check_max times: the next round parks it.
	s.checkRound(stored.Add(3 * time.Minute))
	if n := checks(); n != -1 {
		t.Fatalf("still open after the last check (%d checks)", n)
	}
	if got := queueBodies(t, s, protocol.TransCheckMaxTimeTopic); len(got) != 1 || got[0] != "unknown" {
		t.Fatalf("parked %q", got)
	}
	if got := queueBodies(t, s, "tx"); len(got) != 0 {
		t.Fatalf("a parked transaction is visible: %q", got)
	}
}

// TestEveryTickOnTestClock drives the loop behind the check-backs and the
// producer snapshots on a synctest clock: a round each interval, none
// after stop.
func TestEveryTickOnTestClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		stop, done := make(chan struct{}), make(chan struct{})
		ticks := make(chan time.Time)
		go func() {
			defer close(done)
			everyTick(stop, time.Minute, func(now time.Time) { ticks <- now })
		}()
		for i := 1; i <= 3; i++ {
			if got := (<-ticks).Sub(start); got != time.Duration(i)*time.Minute {
				t.Fatalf("round %d after %v, want %v", i, got, time.Duration(i)*time.Minute)
			}
		}
		close(stop)
		<-done
	})
}
