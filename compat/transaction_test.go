package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/protocol"
)

// txnListener answers the official client's local-transaction callbacks
// by message body: execute[body] when the half is stored, check[body] when
// the broker asks back (unknown when absent).
type txnListener struct {
	mu      sync.Mutex
	execute map[string]primitive.LocalTransactionState
	check   map[string]primitive.LocalTransactionState
	checked map[string]int
}

func newTxnListener() *txnListener {
	return &txnListener{execute: map[string]primitive.LocalTransactionState{},
		check: map[string]primitive.LocalTransactionState{}, checked: map[string]int{}}
}

func (l *txnListener) ExecuteLocalTransaction(m *primitive.Message) primitive.LocalTransactionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.execute[string(m.Body)]; ok {
		return s
	}
	return primitive.UnkonwnState
}

func (l *txnListener) CheckLocalTransaction(m *primitive.MessageExt) primitive.LocalTransactionState {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checked[string(m.Body)]++
	if s, ok := l.check[string(m.Body)]; ok {
		return s
	}
	return primitive.UnkonwnState
}

func (l *txnListener) checks(body string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checked[body]
}

func newTxnProducer(t *testing.T, nameSrv, group string, l primitive.TransactionListener) rocketmq.TransactionProducer {
	t.Helper()
	p, err := rocketmq.NewTransactionProducer(l,
		producer.WithNameServer([]string{nameSrv}),
		producer.WithGroupName(group),
		producer.WithInstanceName(unique("tp")),
		producer.WithRetry(2))
	if err != nil {
		t.Fatalf("new transaction producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start transaction producer: %v", err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = p.Shutdown() }) })
	return p
}

// readTopic returns how often each body is readable in topic over HTTP,
// failing the test when it cannot read.
func readTopic(t *testing.T, httpPort, queues int, topic string) map[string]int {
	t.Helper()
	count, err := tryReadTopic(httpPort, queues, topic)
	if err != nil {
		t.Fatal(err)
	}
	return count
}

// tryReadTopic reads the first 100 messages of each of topic's queues over
// HTTP and counts how often each body is there.
func tryReadTopic(httpPort, queues int, topic string) (map[string]int, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	count := map[string]int{}
	for q := range queues {
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/topics/%s/queues/%d/messages?offset=0&max=100", httpPort, topic, q))
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var read struct {
			Messages []struct {
				Body string `json:"body"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(body, &read); err != nil {
			return nil, fmt.Errorf("read %s/%d: %v: %s", topic, q, err, body)
		}
		for _, m := range read.Messages {
			count[m.Body]++
		}
	}
	return count, nil
}

// TestTransactionsWithOfficialClient: the official TransactionProducer's
// commit and rollback, an unknown state resolved by the broker's
// check-back, and a producer that leaves mid-transaction whose
// transaction another instance of the group resolves. Consumers see the
// committed messages once and nothing else.
func TestTransactionsWithOfficialClient(t *testing.T) {
	t.Parallel()
	s := txnServer(t, "transaction_timeout = \"1s\"\ntransaction_check_interval = \"300ms\"\ntransaction_check_max = 100\n")
	const topic, queues = "Txn", 4
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, queues)
	group := unique("txpg")

	l := newTxnListener()
	l.execute["commit"] = primitive.CommitMessageState
	l.execute["rollback"] = primitive.RollbackMessageState
	l.check["unknown-then-commit"] = primitive.CommitMessageState
	l.check["unknown-then-rollback"] = primitive.RollbackMessageState
	p := newTxnProducer(t, s.NameSrv, group, l)
	send := func(p rocketmq.TransactionProducer, body string) *primitive.TransactionSendResult {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		res, err := p.SendMessageInTransaction(ctx, primitive.NewMessage(topic, []byte(body)))
		if err != nil {
			t.Fatalf("send %s: %v", body, err)
		}
		if res.Status != primitive.SendOK {
			t.Fatalf("send %s: status %d", body, res.Status)
		}
		return res
	}
	for _, body := range []string{"commit", "rollback", "unknown-then-commit", "unknown-then-rollback"} {
		send(p, body)
	}

	// A second instance of the group answers for the first, which leaves
	// with its transaction open. (A producer makes itself known to the
	// broker, by heartbeat, when it first sends.)
	other := newTxnListener()
	other.execute["warm"] = primitive.CommitMessageState
	other.check["orphan"] = primitive.CommitMessageState
	send(newTxnProducer(t, s.NameSrv, group, other), "warm")
	p1 := newTxnProducer(t, s.NameSrv, group, newTxnListener())
	send(p1, "orphan")
	if err := p1.Shutdown(); err != nil {
		t.Fatal(err)
	}

	want := map[string]int{"commit": 1, "unknown-then-commit": 1, "orphan": 1, "warm": 1}
	var got map[string]int
	waitFor(t, 30*time.Second, func() bool {
		got = readTopic(t, s.httpPort, queues, topic)
		return len(got) == len(want)
	}, "committed messages never all readable: %v", &got)
	waitFor(t, 30*time.Second, func() bool { return l.checks("unknown-then-rollback") > 0 },
		"the rolled-back transaction was never checked")
	if l.checks("commit") != 0 || l.checks("rollback") != 0 {
		t.Errorf("ended transactions were checked: %d, %d", l.checks("commit"), l.checks("rollback"))
	}
	if other.checks("orphan") == 0 {
		t.Error("the orphaned transaction was not checked by the other instance")
	}
	// Nothing else shows up, also after a few more check rounds and a
	// restart that must not commit anything twice.
	s.restart(t)
	waitFor(t, 30*time.Second, func() bool {
		got = readTopic(t, s.httpPort, queues, topic)
		return len(got) == len(want)
	}, "messages unreadable after restart")
	for body, n := range want {
		if got[body] != n {
			t.Errorf("%s readable %d times, want %d (all: %v)", body, got[body], n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("readable: %v, want %v", got, want)
	}
}

// txnServer starts `ferry server` with the given [broker] transaction keys.
func txnServer(t *testing.T, keys string) *server {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "ferry.toml")
	if err := os.WriteFile(cfg, []byte("[broker]\n"+keys), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{name: "ferry server (transactions)", dataDir: t.TempDir(), flush: "async", extra: []string{"--config", cfg}}
	s.start(t)
	return s
}

// openTransactions reads GET /v1/transactions.
func openTransactions(t *testing.T, httpPort int) []protocol.OpenTransaction {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/transactions", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []protocol.OpenTransaction
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sendUndecided starts a server with the transaction keys, creates topic
// and sends body in a transaction its producer leaves unknown (until the
// test sets the listener's answer).
func sendUndecided(t *testing.T, keys, topic string, queues int, body string) (*server, *txnListener) {
	t.Helper()
	s := txnServer(t, keys)
	createTopic(t, s.NameSrv, []string{s.Broker}, topic, queues)
	l := newTxnListener()
	p := newTxnProducer(t, s.NameSrv, unique("txpg"), l)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := p.SendMessageInTransaction(ctx, primitive.NewMessage(topic, []byte(body))); err != nil {
		t.Fatal(err)
	}
	return s, l
}

// TestTransactionCheckLimitWithOfficialClient: a transaction the producer
// never resolves is parked in TRANS_CHECK_MAX_TIME_TOPIC after
// transaction_check_max checks and never reaches consumers.
func TestTransactionCheckLimitWithOfficialClient(t *testing.T) {
	t.Parallel()
	// The client's first heartbeat comes a second after it starts: the
	// timeout leaves the producer time to be known before the first check
	// (checks count whether or not a producer is there to take them).
	const topic = "TxnLimit"
	s, l := sendUndecided(t, "transaction_timeout = \"2s\"\ntransaction_check_interval = \"200ms\"\ntransaction_check_max = 3\n",
		topic, 1, "undecided")
	waitFor(t, 30*time.Second, func() bool {
		return readTopic(t, s.httpPort, 1, protocol.TransCheckMaxTimeTopic)["undecided"] == 1
	}, "the undecided transaction was never parked")
	if n := l.checks("undecided"); n != 3 {
		t.Errorf("checked %d times, want 3", n)
	}
	if open := openTransactions(t, s.httpPort); len(open) != 0 {
		t.Errorf("still open: %+v", open)
	}
	if got := readTopic(t, s.httpPort, 1, topic); len(got) != 0 {
		t.Errorf("consumers see %v", got)
	}
}

// TestOpenTransactionSurvivesKill9WithOfficialClient: a transaction open
// when the broker is killed is still open after the restart, with its
// check count, and is committed once when the producer answers.
func TestOpenTransactionSurvivesKill9WithOfficialClient(t *testing.T) {
	t.Parallel()
	const topic = "TxnKill"
	s, l := sendUndecided(t, "transaction_timeout = \"500ms\"\ntransaction_check_interval = \"300ms\"\ntransaction_check_max = 1000\n",
		topic, 2, "survivor")
	waitFor(t, 30*time.Second, func() bool { return l.checks("survivor") > 0 }, "never checked")
	s.kill9AndRestart(t)
	open := openTransactions(t, s.httpPort)
	if len(open) != 1 || open[0].Topic != topic || open[0].Checks < 1 {
		t.Fatalf("open after kill -9: %+v", open)
	}
	l.mu.Lock()
	l.check["survivor"] = primitive.CommitMessageState
	l.mu.Unlock()
	// The producer is known again at its next heartbeat (every 30 s).
	waitFor(t, 60*time.Second, func() bool { return readTopic(t, s.httpPort, 2, topic)["survivor"] == 1 },
		"the surviving transaction was never committed")
	s.restart(t)
	if got := readTopic(t, s.httpPort, 2, topic); len(got) != 1 || got["survivor"] != 1 {
		t.Errorf("after another restart consumers see %v", got)
	}
	if open := openTransactions(t, s.httpPort); len(open) != 0 {
		t.Errorf("still open: %+v", open)
	}
}
