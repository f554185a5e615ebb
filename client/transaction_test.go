package client

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/broker"
)

// txCluster is one broker that checks open transactions every 100 ms once
// they are 200 ms old.
func txCluster(t *testing.T) *cluster {
	t.Helper()
	c := newCluster(t, 1, func(_ int, cfg *broker.Config) {
		cfg.TransactionTimeout = broker.Duration(200 * time.Millisecond)
		cfg.TransactionCheckInterval = broker.Duration(100 * time.Millisecond)
		cfg.TransactionCheckMax = 1000
	})
	c.createTopic("tx", 2)
	return c
}

// answers is a checker backed by a table of decided transactions, as an
// application's database would be; it counts the questions.
type answers struct {
	mu    sync.Mutex
	state map[string]TransactionState // by MsgID
	asked map[string]int
	topic map[string]string // topic and body the checker saw, by MsgID
	body  map[string]string
}

func newAnswers() *answers {
	return &answers{state: map[string]TransactionState{}, asked: map[string]int{},
		topic: map[string]string{}, body: map[string]string{}}
}

func (a *answers) set(id string, st TransactionState) {
	a.mu.Lock()
	a.state[id] = st
	a.mu.Unlock()
}

func (a *answers) check(_ context.Context, m *MessageExt) TransactionState {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked[m.MsgID]++
	a.topic[m.MsgID], a.body[m.MsgID] = m.Topic, string(m.Body)
	return a.state[m.MsgID]
}

func (a *answers) askedAbout(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked[id]
}

func openTxns(t *testing.T, b *broker.Broker) int {
	t.Helper()
	list, err := b.Transactions()
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// bodies drains topic and counts each body.
func bodies(t *testing.T, endpoint, topic string) map[string]int {
	out := map[string]int{}
	for _, m := range drainAll(t, endpoint, topic) {
		out[string(m.Body)]++
	}
	return out
}

func TestSendInTransactionCommitAndRollback(t *testing.T) {
	c := txCluster(t)
	a := newAnswers()
	p := newTestProducer(t, c.endpoint(), WithGroup("txg"), WithTransactionChecker(a.check))
	ctx := ctxT(t)

	var seen SendResult
	res, err := p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("committed"), Keys: []string{"k1"}},
		func(_ context.Context, r SendResult) TransactionState {
			seen = r
			// The half is stored but not visible while the local transaction runs.
			if n := len(drainAll(t, c.endpoint(), "tx")); n != 0 {
				t.Errorf("%d messages visible before the commit", n)
			}
			return TxCommit
		})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != TxCommit || res.MsgID == "" || res.MsgID != seen.MsgID || res.OffsetMsgID == "" {
		t.Fatalf("result %+v, local saw %+v", res, seen)
	}
	_, err = p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("rolled back")},
		func(context.Context, SendResult) TransactionState { return TxRollback })
	if err != nil {
		t.Fatal(err)
	}
	// END_TRANSACTION is answered after its append: both are closed now.
	if n := openTxns(t, c.brokers[0]); n != 0 {
		t.Fatalf("%d transactions open after commit and rollback", n)
	}
	waitFor(t, 5*time.Second, "the committed message", func() bool { return len(drainAll(t, c.endpoint(), "tx")) == 1 })
	msgs := drainAll(t, c.endpoint(), "tx")
	if m := msgs[0]; string(m.Body) != "committed" || m.MsgID != res.MsgID || len(m.Keys) != 1 || m.Keys[0] != "k1" {
		t.Fatalf("consumed %q id %s keys %v, want %q id %s", m.Body, m.MsgID, m.Keys, "committed", res.MsgID)
	}
	if _, ok := msgs[0].Property("TRAN_MSG"); ok {
		t.Fatal("the committed message still carries TRAN_MSG")
	}
	if a.askedAbout(res.MsgID) != 0 {
		t.Fatal("a transaction that was ended was checked")
	}
}

func TestSendInTransactionUnknownResolvedByCheck(t *testing.T) {
	c := txCluster(t)
	a := newAnswers()
	p := newTestProducer(t, c.endpoint(), WithGroup("txu"), WithTransactionChecker(a.check))
	ctx := ctxT(t)
	var ids []string
	for _, body := range []string{"to commit", "to roll back"} {
		res, err := p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte(body)},
			func(context.Context, SendResult) TransactionState { return TxUnknown })
		if err != nil {
			t.Fatal(err)
		}
		if res.State != TxUnknown {
			t.Fatalf("state %v", res.State)
		}
		ids = append(ids, res.MsgID)
	}
	// Asked while the application does not know yet: the halves stay open.
	waitFor(t, 10*time.Second, "two checks of each", func() bool { return a.askedAbout(ids[0]) >= 2 && a.askedAbout(ids[1]) >= 2 })
	if n := openTxns(t, c.brokers[0]); n != 2 {
		t.Fatalf("%d open transactions, want 2", n)
	}
	if n := len(drainAll(t, c.endpoint(), "tx")); n != 0 {
		t.Fatalf("%d messages of open transactions visible", n)
	}
	a.mu.Lock()
	if a.topic[ids[0]] != "tx" || a.body[ids[0]] != "to commit" {
		t.Errorf("checker saw topic %q body %q", a.topic[ids[0]], a.body[ids[0]])
	}
	a.mu.Unlock()
	a.set(ids[0], TxCommit)
	a.set(ids[1], TxRollback)
	waitFor(t, 10*time.Second, "both transactions closed", func() bool { return openTxns(t, c.brokers[0]) == 0 })
	waitFor(t, 5*time.Second, "the committed message", func() bool { return len(drainAll(t, c.endpoint(), "tx")) >= 1 })
	got := bodies(t, c.endpoint(), "tx")
	if len(got) != 1 || got["to commit"] != 1 {
		t.Fatalf("consumed %v, want the committed message once", got)
	}
}

func TestSendInTransactionProducerDiesAnotherAnswers(t *testing.T) {
	c := txCluster(t)
	shared := newAnswers() // the group's shared state (a database)
	dead := newAnswers()   // never consulted once its producer is gone
	ctx := ctxT(t)

	other := newTestProducer(t, c.endpoint(), WithGroup("txd"), WithTransactionChecker(shared.check))
	// The other instance has sent a transaction of its own: the broker knows it.
	if _, err := other.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("other")},
		func(context.Context, SendResult) TransactionState { return TxCommit }); err != nil {
		t.Fatal(err)
	}

	p, err := NewProducer(c.endpoint(), WithGroup("txd"), WithTransactionChecker(dead.check))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("orphan")},
		func(_ context.Context, r SendResult) TransactionState {
			shared.set(r.MsgID, TxCommit) // the local transaction committed, then the process died
			return TxUnknown
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Asked first: the half may not be listed yet when the wait starts.
	waitFor(t, 10*time.Second, "the orphan committed by the other instance", func() bool {
		return shared.askedAbout(res.MsgID) > 0 && openTxns(t, c.brokers[0]) == 0
	})
	if shared.askedAbout(res.MsgID) == 0 {
		t.Fatal("the other instance was never asked")
	}
	if n := dead.askedAbout(res.MsgID); n != 0 {
		t.Fatalf("the closed producer was asked %d times", n)
	}
	waitFor(t, 5*time.Second, "both messages", func() bool { return len(drainAll(t, c.endpoint(), "tx")) >= 2 })
	got := bodies(t, c.endpoint(), "tx")
	if len(got) != 2 || got["orphan"] != 1 || got["other"] != 1 {
		t.Fatalf("consumed %v", got)
	}
}

func TestSendInTransactionRefusals(t *testing.T) {
	c := txCluster(t)
	ctx := ctxT(t)
	commit := func(context.Context, SendResult) TransactionState { return TxCommit }
	plain := newTestProducer(t, c.endpoint(), WithGroup("txr"))
	if _, err := plain.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("x")}, commit); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("without a checker: %v", err)
	}
	p := newTestProducer(t, c.endpoint(), WithGroup("txr"), WithTransactionChecker(newAnswers().check))
	if _, err := p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("x")}, nil); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("without a local transaction: %v", err)
	}
	if _, err := p.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("x"), DelayLevel: 2}, commit); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("delayed: %v", err)
	}
	if _, err := NewProducer(c.endpoint(), WithTransactionChecker(nil)); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("nil checker: %v", err)
	}
	// A panicking local transaction leaves the transaction open.
	a := newAnswers()
	q := newTestProducer(t, c.endpoint(), WithGroup("txp"), WithTransactionChecker(a.check))
	res, err := q.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("p")},
		func(context.Context, SendResult) TransactionState { panic("boom") })
	if err != nil || res.State != TxUnknown {
		t.Fatalf("panic: %+v %v", res, err)
	}
	a.set(res.MsgID, TxRollback)
	waitFor(t, 10*time.Second, "the rollback by check", func() bool { return openTxns(t, c.brokers[0]) == 0 })
	if n := len(drainAll(t, c.endpoint(), "tx")); n != 0 {
		t.Fatalf("%d messages visible", n)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.SendInTransaction(ctx, &Message{Topic: "tx", Body: []byte("x")}, commit); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestSendInTransactionHTTP(t *testing.T) {
	c := newCluster(t, 1, nil)
	c.createTopic("txh", 1)
	p := newTestProducer(t, c.httpEndpoint(0)) // no checker: HTTP needs none
	ctx := ctxT(t)
	for _, st := range []TransactionState{TxCommit, TxRollback, TxUnknown} {
		res, err := p.SendInTransaction(ctx, &Message{Topic: "txh", Body: []byte(st.String())},
			func(_ context.Context, r SendResult) TransactionState {
				if r.MsgID == "" {
					t.Error("no message id")
				}
				return st
			})
		if err != nil || res.State != st {
			t.Fatalf("%v: %+v %v", st, res, err)
		}
	}
	// The unknown one stays open (until its timeout); the others are closed.
	waitFor(t, 10*time.Second, "one open transaction", func() bool { return openTxns(t, c.brokers[0]) == 1 })
	waitFor(t, 5*time.Second, "the committed message", func() bool { return len(drainAll(t, c.endpoint(), "txh")) >= 1 })
	got := bodies(t, c.endpoint(), "txh")
	if len(got) != 1 || got["commit"] != 1 {
		t.Fatalf("consumed %v", got)
	}
}
