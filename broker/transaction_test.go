package broker

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// sendHalf sends body as the half of a transaction of producer group pg.
func (c *tclient) sendHalf(topic string, queue int, body, uniq string) (off, queueOff int64) {
	c.t.Helper()
	props := map[string]string{protocol.PropTransaction: "true", protocol.PropProducerGroup: "pg", protocol.PropUniqKey: uniq}
	resp := c.invoke(remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": "pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
		"queueId": strconv.Itoa(queue), "sysFlag": strconv.Itoa(int(protocol.SysFlagTransactionPrepared)),
		"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0",
		"properties": string(protocol.EncodeProperties(props)), "reconsumeTimes": "0", "unitMode": "false", "batch": "false",
	}, []byte(body)))
	mustOK(c.t, resp)
	if got := resp.StringOr("transactionId", ""); got != uniq {
		c.t.Fatalf("transactionId %q, want %q", got, uniq)
	}
	_, off, err := protocol.ParseOffsetMsgID(resp.StringOr("msgId", ""))
	if err != nil {
		c.t.Fatal(err)
	}
	qo, err := strconv.ParseInt(resp.StringOr("queueOffset", ""), 10, 64)
	if err != nil {
		c.t.Fatal(err)
	}
	return off, qo
}

// endTxnRequest is the END_TRANSACTION the official client sends.
func endTxnRequest(off, queueOff int64, uniq string, how int, fromCheck bool) *remoting.Command {
	return remoting.NewRequest(protocol.ReqEndTransaction, map[string]string{
		"producerGroup": "pg", "tranStateTableOffset": strconv.FormatInt(queueOff, 10),
		"commitLogOffset": strconv.FormatInt(off, 10), "commitOrRollback": strconv.Itoa(how),
		"fromTransactionCheck": strconv.FormatBool(fromCheck), "msgId": uniq, "transactionId": uniq, "bname": "broker-a",
	}, nil)
}

func (c *tclient) endTxn(off, queueOff int64, uniq string, how int) *remoting.Command {
	c.t.Helper()
	return c.invoke(endTxnRequest(off, queueOff, uniq, how, false))
}

// visible returns the bodies a consumer of topic/queue reads once the
// dispatcher has indexed everything written.
func visible(t *testing.T, b *Broker, c *tclient, topic string, queue int) []string {
	t.Helper()
	waitIndexed(t, b.cq, b.clog.WrittenOffset())
	var out []string
	for off := int64(0); ; {
		_, recs := c.pull("g", topic, queue, off, 0)
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			if v, _ := r.Property(protocol.PropTransaction); v != "" {
				t.Errorf("consumer sees %s with %s=%s", r.Body, protocol.PropTransaction, v)
			}
			out = append(out, string(r.Body))
		}
		off += int64(len(recs))
	}
}

func openTxns(t *testing.T, b *Broker) []openHalf {
	t.Helper()
	b.txn.mu.Lock()
	defer b.txn.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.txn.syncLocked(ctx, b.clog.WrittenOffset()); err != nil {
		t.Fatal(err)
	}
	return b.txn.tab.list()
}

func TestTransactionCommitOnce(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	off, qo := c.sendHalf("tx", 1, "order-1", "U1")
	if got := visible(t, b, c, "tx", 1); len(got) != 0 {
		t.Fatalf("a half message is visible: %q", got)
	}
	if open := openTxns(t, b); len(open) != 1 || open[0].Topic != "tx" || open[0].QueueID != 1 || open[0].Group != "pg" {
		t.Fatalf("open transactions %+v", open)
	}
	mustOK(t, c.endTxn(off, qo, "U1", protocol.TransactionCommit))
	got := visible(t, b, c, "tx", 1)
	if len(got) != 1 || got[0] != "order-1" {
		t.Fatalf("after commit the queue holds %q", got)
	}
	_, recs := c.pull("g", "tx", 1, 0, 0)
	r := recs[0]
	if r.SysFlag&protocol.SysFlagTransactionMask != protocol.SysFlagTransactionCommit || r.PreparedTransactionOffset != off {
		t.Errorf("committed message sysFlag %#x prepared offset %d", r.SysFlag, r.PreparedTransactionOffset)
	}
	if u, _ := r.Property(protocol.PropUniqKey); u != "U1" {
		t.Errorf("committed message UNIQ_KEY %q", u)
	}
	if _, ok := r.Property(protocol.PropRealTopic); ok {
		t.Error("committed message keeps REAL_TOPIC")
	}
	// A second commit, a rollback after the commit and a commit sent by a
	// check all find the op record and do nothing.
	for _, how := range []int{protocol.TransactionCommit, protocol.TransactionRollback} {
		resp := c.endTxn(off, qo, "U1", how)
		mustOK(t, resp)
		if resp.Remark == "" {
			t.Errorf("a repeated END_TRANSACTION %d is not said to be ended already", how)
		}
	}
	if got := visible(t, b, c, "tx", 1); len(got) != 1 {
		t.Fatalf("after repeated commits the queue holds %q", got)
	}
	if open := openTxns(t, b); len(open) != 0 {
		t.Fatalf("open after commit: %+v", open)
	}
}

func TestTransactionRollbackAndUnknown(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	off, qo := c.sendHalf("tx", 0, "cancelled", "U1")
	// Unknown leaves it open.
	mustOK(t, c.endTxn(off, qo, "U1", protocol.TransactionUnknown))
	if open := openTxns(t, b); len(open) != 1 {
		t.Fatalf("open after unknown: %+v", open)
	}
	mustOK(t, c.endTxn(off, qo, "U1", protocol.TransactionRollback))
	mustOK(t, c.endTxn(off, qo, "U1", protocol.TransactionCommit)) // too late: already rolled back
	if got := visible(t, b, c, "tx", 0); len(got) != 0 {
		t.Fatalf("a rolled-back message is visible: %q", got)
	}
	if n := b.cq.MaxOffset(protocol.TransOpHalfTopic, 0); n != 1 {
		t.Fatalf("%d op records, want 1", n)
	}
}

func TestEndTransactionRefusesWrongHalf(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	off, qo := c.sendHalf("tx", 0, "x", "U1")
	plain := c.send("tx", 0, "plain", nil)
	mustOK(t, plain)
	_, plainOff, _ := protocol.ParseOffsetMsgID(plain.StringOr("msgId", ""))
	cases := map[string]*remoting.Command{
		"other group":      endTxnRequest(off, qo, "U1", protocol.TransactionCommit, false),
		"other message id": endTxnRequest(off, qo, "U2", protocol.TransactionCommit, false),
		"other queue off":  endTxnRequest(off, qo+5, "U1", protocol.TransactionCommit, false),
		"not a half":       endTxnRequest(plainOff, 0, "", protocol.TransactionCommit, false),
		"no offset":        endTxnRequest(off, qo, "U1", protocol.TransactionCommit, false),
		"bad decision":     endTxnRequest(off, qo, "U1", 3, false),
	}
	cases["other group"].ExtFields["producerGroup"] = "other"
	delete(cases["no offset"].ExtFields, "commitLogOffset")
	for name, req := range cases {
		if resp := c.invoke(req); resp.Code == protocol.RespSuccess {
			t.Errorf("%s: answered SUCCESS", name)
		}
	}
	if got := visible(t, b, c, "tx", 0); len(got) != 1 || got[0] != "plain" {
		t.Fatalf("queue holds %q", got)
	}
	if open := openTxns(t, b); len(open) != 1 {
		t.Fatalf("open: %+v", open)
	}
}

// fakeTxnProducer answers the broker's checks as decide says (0 leaves
// the transaction unknown), over the connection the check came on.
type fakeTxnProducer struct {
	t      *testing.T
	decide func(body string) int
	mu     sync.Mutex
	checks map[string]int // checks received by body
}

func (p *fakeTxnProducer) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	if req.Code != protocol.ReqCheckTransactionState {
		return
	}
	rec, err := protocol.Decode(req.Body)
	if err != nil {
		p.t.Errorf("check body: %v", err)
		return
	}
	if g, _ := rec.Property(protocol.PropProducerGroup); g != "pg" || string(rec.Topic) != "tx" {
		p.t.Errorf("check of group %q topic %q", g, rec.Topic)
	}
	p.mu.Lock()
	p.checks[string(rec.Body)]++
	p.mu.Unlock()
	off, _ := strconv.ParseInt(req.StringOr("commitLogOffset", ""), 10, 64)
	qo, _ := strconv.ParseInt(req.StringOr("tranStateTableOffset", ""), 10, 64)
	uniq, _ := rec.Property(protocol.PropUniqKey)
	_ = c.SendOneway(endTxnRequest(off, qo, uniq, p.decide(string(rec.Body)), true))
}

func (p *fakeTxnProducer) count(body string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.checks[body]
}

// connect registers the fake producer in group pg with a heartbeat.
func (p *fakeTxnProducer) connect(t *testing.T, b *Broker, id string) *remoting.Client {
	cl := remoting.NewClient(remoting.ClientConfig{Handler: p})
	t.Cleanup(func() { cl.Close() })
	body, err := remoting.EncodeBody(remoting.HeartbeatData{ClientID: id, ProducerDataSet: []remoting.ProducerData{{GroupName: "pg"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.Invoke(context.Background(), b.Addr(), remoting.NewRequest(protocol.ReqHeartBeat, nil, body))
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, resp)
	return cl
}

func fastChecks(maxChecks int) func(*Config) {
	return func(c *Config) {
		c.TransactionTimeout = Duration(time.Millisecond)
		c.TransactionCheckInterval = Duration(20 * time.Millisecond)
		c.TransactionCheckMax = maxChecks
	}
}

func TestTransactionCheckBackAndParking(t *testing.T) {
	b := testBroker(t, t.TempDir(), fastChecks(3))
	p := &fakeTxnProducer{t: t, checks: map[string]int{}, decide: func(body string) int {
		switch body {
		case "commit":
			return protocol.TransactionCommit
		case "rollback":
			return protocol.TransactionRollback
		}
		return protocol.TransactionUnknown
	}}
	p.connect(t, b, "producer-1")
	c := newClient(t, b)
	for i, body := range []string{"commit", "rollback", "unknown"} {
		c.sendHalf("tx", 0, body, "U"+strconv.Itoa(i))
	}
	waitFor(t, 10*time.Second, "the unknown transaction parked", func() bool {
		return b.cq.MaxOffset(protocol.TransCheckMaxTimeTopic, 0) == 1
	})
	if got := visible(t, b, c, "tx", 0); len(got) != 1 || got[0] != "commit" {
		t.Fatalf("consumers see %q, want only the committed message", got)
	}
	waitFor(t, 10*time.Second, "3 checks of the unknown transaction received", func() bool { return p.count("unknown") == 3 })
	if n := p.count("commit"); n < 1 || n >= 3 {
		// More than one when a round starts before the answer to the
		// last is in.
		t.Errorf("the committed transaction was checked %d times, want 1 or 2", n)
	}
	if open := openTxns(t, b); len(open) != 0 {
		t.Fatalf("open after parking: %+v", open)
	}
	var parked []protocol.Record
	if err := b.txn.readQueue(protocol.TransCheckMaxTimeTopic, 0, func(r *protocol.Record) {
		parked = append(parked, *r)
	}); err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || string(parked[0].Body) != "unknown" {
		t.Fatalf("parked %v", parked)
	}
	if rt, _ := parked[0].Property(protocol.PropRealTopic); rt != "tx" {
		t.Errorf("parked message's REAL_TOPIC %q", rt)
	}
	if n, _ := parked[0].Property(protocol.PropTransactionCheckTimes); n != "3" {
		t.Errorf("parked message's %s %q", protocol.PropTransactionCheckTimes, n)
	}
}

// TestTransactionCheckSkipsDeadProducer: checks go to the producers in
// turn, so one whose connection is gone does not keep another instance
// of the group from resolving the transaction.
func TestTransactionCheckAnsweredByOtherInstance(t *testing.T) {
	b := testBroker(t, t.TempDir(), fastChecks(15))
	silent := &fakeTxnProducer{t: t, checks: map[string]int{}, decide: func(string) int { return protocol.TransactionUnknown }}
	answering := &fakeTxnProducer{t: t, checks: map[string]int{}, decide: func(string) int { return protocol.TransactionCommit }}
	silent.connect(t, b, "producer-1")
	answering.connect(t, b, "producer-2")
	c := newClient(t, b)
	c.sendHalf("tx", 0, "m", "U1")
	waitFor(t, 10*time.Second, "the transaction committed", func() bool { return len(visible(t, b, c, "tx", 0)) == 1 })
}

func TestOpenTransactionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	slow := func(c *Config) { c.TransactionCheckInterval = Duration(time.Hour) }
	b := testBroker(t, dir, slow)
	c := newClient(t, b)
	off1, qo1 := c.sendHalf("tx", 0, "a", "U1")
	off2, qo2 := c.sendHalf("tx", 0, "b", "U2")
	off3, qo3 := c.sendHalf("tx", 0, "c", "U3")
	mustOK(t, c.endTxn(off1, qo1, "U1", protocol.TransactionCommit))
	mustOK(t, c.endTxn(off2, qo2, "U2", protocol.TransactionRollback))
	open := openTxns(t, b)
	if len(open) != 1 || open[0].Offset != off3 {
		t.Fatalf("open before restart: %+v", open)
	}
	b.txn.mu.Lock()
	b.txn.checkHalfLocked(open[0]) // no producer: counted all the same
	b.txn.mu.Unlock()
	// A count left behind by a crash between an op record and its
	// deletion is dropped on load.
	if err := b.meta.db.Set([]byte(txnCheckKey(off1)), []byte("4"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, slow)
	c = newClient(t, b)
	open = openTxns(t, b)
	if len(open) != 1 || open[0].Offset != off3 || open[0].Checks != 1 {
		t.Fatalf("open after restart: %+v", open)
	}
	if _, closer, err := b.meta.db.Get([]byte(txnCheckKey(off1))); err == nil {
		closer.Close()
		t.Error("the check count of a closed half survived the load")
	}
	// Neither the committed nor the rolled-back one acts again.
	mustOK(t, c.endTxn(off1, qo1, "U1", protocol.TransactionCommit))
	mustOK(t, c.endTxn(off2, qo2, "U2", protocol.TransactionCommit))
	mustOK(t, c.endTxn(off3, qo3, "U3", protocol.TransactionCommit))
	if got := visible(t, b, c, "tx", 0); len(got) != 2 || got[0] != "a" || got[1] != "c" {
		t.Fatalf("after restart consumers see %q", got)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	b = testBroker(t, dir, slow)
	if open := openTxns(t, b); len(open) != 0 {
		t.Fatalf("open after the second restart: %+v", open)
	}
}

func TestTransactionRefusedInBatch(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	props := [][]byte{protocol.EncodeProperties(map[string]string{protocol.PropTransaction: "true", protocol.PropProducerGroup: "pg"})}
	resp := c.invoke(remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{
		"a": "pg", "b": "tx", "c": "TBW102", "d": "4", "e": "0", "f": "4", "g": "0", "h": "0",
		"i": "", "j": "0", "k": "false", "m": "true",
	}, EncodeBatch(nil, []int32{0}, [][]byte{[]byte("x")}, props)))
	if resp.Code != protocol.RespMessageIllegal {
		t.Fatalf("a transactional batch answered %d %s", resp.Code, resp.Remark)
	}
	res := c.sendMulti(protocol.MultiEntry{Topic: "tx", Body: []byte("half"), Properties: props[0]},
		protocol.MultiEntry{Topic: "tx", Body: []byte("plain")})
	if res[0].Code != protocol.RespMessageIllegal || res[1].Code != protocol.RespSuccess {
		t.Fatalf("a multi-queue batch with a half: %+v", res)
	}
	if got := visible(t, b, c, "tx", int(res[1].QueueID)); len(got) != 1 || got[0] != "plain" {
		t.Fatalf("queue holds %q", got)
	}
}

func TestTxnTableDue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tab := newTxnTable()
	tab.addOp(300) // read before its half, as on load
	for i, off := range []int64{100, 200, 300, 400} {
		tab.addHalf(openHalf{Offset: off, StoredAt: t0.Add(time.Duration(i) * time.Second)})
	}
	if l := tab.list(); len(l) != 3 || l[0].Offset != 100 || l[2].Offset != 400 {
		t.Fatalf("open %+v", l)
	}
	tab.setChecks(100, 15)
	check, park := tab.due(t0.Add(7*time.Second), 6*time.Second, 15)
	if len(park) != 1 || park[0].Offset != 100 || len(check) != 1 || check[0].Offset != 200 {
		t.Fatalf("check %+v park %+v", check, park)
	}
	if _, ok := tab.close(200); !ok {
		t.Fatal("200 was open")
	}
	if _, ok := tab.close(200); ok {
		t.Fatal("200 closed twice")
	}
	tab.addOp(400)
	if l := tab.list(); len(l) != 1 || l[0].Offset != 100 {
		t.Fatalf("open %+v", l)
	}
}

func FuzzEndTransactionHeader(f *testing.F) {
	f.Add("pg", "0", "123", "8", "false", "U1")
	f.Add("pg", "-1", "x", "12", "true", "")
	f.Add("", "", "", "", "", "")
	f.Add("pg", "9223372036854775807", "-5", "3", "maybe", "U")
	f.Fuzz(func(t *testing.T, group, qo, off, how, fromCheck, msgID string) {
		req := remoting.NewRequest(protocol.ReqEndTransaction, map[string]string{
			"producerGroup": group, "tranStateTableOffset": qo, "commitLogOffset": off,
			"commitOrRollback": how, "fromTransactionCheck": fromCheck, "msgId": msgID,
		}, nil)
		h, err := parseEndTxnHeader(req)
		if err != nil {
			return
		}
		if h.commitLogOffset < 0 {
			t.Fatalf("accepted negative offset %d", h.commitLogOffset)
		}
		switch h.commitOrRollback {
		case protocol.TransactionUnknown, protocol.TransactionCommit, protocol.TransactionRollback:
		default:
			t.Fatalf("accepted commitOrRollback %d", h.commitOrRollback)
		}
	})
}

func TestListOpenTransactions(t *testing.T) {
	b, api := testHTTPBroker(t, nil)
	c := newClient(t, b)
	off, qo := c.sendHalf("tx", 2, "open", "U1")
	off2, qo2 := c.sendHalf("tx", 0, "done", "U2")
	mustOK(t, c.endTxn(off2, qo2, "U2", protocol.TransactionCommit))
	var list []protocol.OpenTransaction
	api.ok("GET", "/v1/transactions", nil, 200, &list)
	if len(list) != 1 {
		t.Fatalf("GET /v1/transactions: %+v", list)
	}
	got := list[0]
	if got.CommitLogOffset != off || got.QueueOffset != qo || got.ProducerGroup != "pg" || got.Topic != "tx" ||
		got.QueueID != 2 || got.MsgID != "U1" || got.Checks != 0 || got.AgeMs < 0 || got.StoredMs == 0 {
		t.Fatalf("open transaction %+v", got)
	}
	resp := c.invoke(remoting.NewRequest(protocol.ReqFerryTxList, nil, nil))
	mustOK(t, resp)
	var viaRemoting []protocol.OpenTransaction
	if err := json.Unmarshal(resp.Body, &viaRemoting); err != nil {
		t.Fatal(err)
	}
	if len(viaRemoting) != 1 || viaRemoting[0].CommitLogOffset != off {
		t.Fatalf("FERRY_TX_LIST: %+v", viaRemoting)
	}
}

func TestTransactionConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.TransactionTimeout = -1 }, "transaction_timeout and transaction_check_interval must not be negative"},
		{func(c *Config) { c.TransactionCheckInterval = -1 }, "transaction_timeout and transaction_check_interval must not be negative"},
		{func(c *Config) { c.TransactionCheckMax = -1 }, "transaction_check_max -1 must be 0 to 1000"},
		{func(c *Config) { c.TransactionCheckMax = 1001 }, "transaction_check_max 1001 must be 0 to 1000"},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
	c := DefaultConfig()
	c.TransactionTimeout, c.TransactionCheckInterval, c.TransactionCheckMax = 0, 0, 0 // the defaults
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
