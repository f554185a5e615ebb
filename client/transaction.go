package client

// Transactional messages (RocketMQ's half messages), over the remoting
// transport with the official clients' wire protocol:
//
//  1. SEND_MESSAGE with sysFlag TRANSACTION_PREPARED and the properties
//     TRAN_MSG=true and PGROUP=<producer group>: the broker stores a half
//     message no consumer sees and answers its offset message id (store
//     host + commitlog offset), its queue offset in the half topic and
//     transactionId (the UNIQ_KEY).
//  2. The local transaction runs.
//  3. END_TRANSACTION (37) to the broker that stored the half, with
//     commitOrRollback 8 (commit), 12 (rollback) or 0 (unknown: the half
//     stays open). The official clients send it one-way; this producer
//     waits for the answer so that SendInTransaction can say whether the
//     commit or rollback was stored.
//  4. For a half left open longer than its transaction_timeout the broker
//     sends CHECK_TRANSACTION_STATE (39) on a connection of a producer of
//     the group that has sent a heartbeat; the producer's checker answers
//     with a one-way END_TRANSACTION (fromTransactionCheck=true) on the
//     same connection.
//
// A transactional producer heartbeats a broker on each new connection
// before its first half there, so the broker knows whom to ask. Any
// producer of the group may be asked about any half of the group: the
// checker must answer from state every instance shares (a database).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TransactionState is the outcome of a local transaction.
type TransactionState int8

// Transaction states. TxUnknown leaves the half message open: the broker
// asks the group's checker later (remoting), or rolls the transaction
// back after its timeout (HTTP).
const (
	TxUnknown TransactionState = iota
	TxCommit
	TxRollback
)

func (s TransactionState) String() string {
	switch s {
	case TxCommit:
		return "commit"
	case TxRollback:
		return "rollback"
	case TxUnknown:
		return "unknown"
	}
	return "TransactionState(" + strconv.Itoa(int(s)) + ")"
}

// wire is END_TRANSACTION's commitOrRollback for s.
func (s TransactionState) wire() int {
	switch s {
	case TxCommit:
		return protocol.TransactionCommit
	case TxRollback:
		return protocol.TransactionRollback
	}
	return protocol.TransactionUnknown
}

// LocalTransaction runs the application's side of a transaction once the
// half message is stored; res says where. It returns the outcome; a
// panic in it is recovered and counts as TxUnknown.
type LocalTransaction func(ctx context.Context, res SendResult) TransactionState

// TransactionChecker answers the broker's question about a transaction
// left open: m is the half message as sent (its topic, body, keys and
// properties), m.MsgID the transaction's id (the SendResult.MsgID of
// SendInTransaction). It runs on a goroutine of its own per question,
// possibly in another process of the same producer group than the one
// that sent the half; TxUnknown leaves the half open for the next check.
type TransactionChecker func(ctx context.Context, m *MessageExt) TransactionState

// TransactionResult is the outcome of SendInTransaction.
type TransactionResult struct {
	SendResult                  // where the half message was stored
	State      TransactionState // what the local transaction returned
}

// ErrTransactionEnd wraps the failure to tell the broker a transaction's
// outcome after the half was stored: the half stays open and is resolved
// by the checker (remoting) or the transaction's timeout (HTTP).
var ErrTransactionEnd = errors.New("client: the transaction's outcome was not stored")

// WithTransactionChecker makes a producer able to send transactional
// messages over the remoting transport and to answer the broker's checks
// of its group's open transactions (see TransactionChecker). Over HTTP it
// is accepted and not used: the broker cannot ask an HTTP producer.
func WithTransactionChecker(fn TransactionChecker) ProducerOpt {
	return ProducerOpt(func(c *config) {
		if fn == nil {
			c.bad("WithTransactionChecker: nil checker")
			return
		}
		c.txChecker = fn
	})
}

// txCheckTimeout bounds one run of the checker.
const txCheckTimeout = 30 * time.Second

// SendInTransaction stores m as a half message no consumer sees, runs
// local, and commits (m becomes visible, once) or rolls back as local
// says. With TxUnknown, or when the outcome could not be sent
// (ErrTransactionEnd), the half stays open: over remoting the broker asks
// a producer of the group (WithTransactionChecker) until one answers;
// over HTTP it rolls the transaction back after its timeout. The half is
// sent with retries like Send; a retry after a lost answer may store a
// second half with the same MsgID, which the checker then resolves.
// Batches, delays and idempotent producers are refused.
func (p *Producer) SendInTransaction(ctx context.Context, m *Message, local LocalTransaction) (TransactionResult, error) {
	if p.closed.Load() {
		return TransactionResult{}, ErrClosed
	}
	if local == nil {
		return TransactionResult{}, fmt.Errorf("%w: SendInTransaction needs a local transaction", ErrInvalidOption)
	}
	if p.idem != nil {
		return TransactionResult{}, fmt.Errorf("%w: an idempotent producer cannot send transactions", ErrInvalidOption)
	}
	if m != nil && (m.DelayLevel > 0 || !m.DeliverAt.IsZero()) {
		return TransactionResult{}, fmt.Errorf("%w: a transactional message cannot be delayed", ErrInvalidMessage)
	}
	o, err := prepare(m, p.cfg.maxMessageSize)
	if err != nil {
		return TransactionResult{}, err
	}
	if !p.begin() {
		return TransactionResult{}, ErrClosed
	}
	defer p.wg.Done()
	switch tr := p.tr.(type) {
	case *rmqProducer:
		return p.sendInTxRemoting(ctx, tr, o, local)
	case *httpProducer:
		return p.sendInTxHTTP(ctx, tr, o, local)
	}
	return TransactionResult{}, fmt.Errorf("%w: transactions", ErrNotSupported)
}

// runLocal runs local, a panic counting as TxUnknown.
func runLocal(ctx context.Context, local LocalTransaction, res SendResult, log Logger) (st TransactionState) {
	defer func() {
		if r := recover(); r != nil {
			logAt(log, LogError, "local transaction panicked; the transaction stays open", "msgId", res.MsgID, "panic", fmt.Sprint(r))
			st = TxUnknown
		}
	}()
	st = local(ctx, res)
	switch st {
	case TxCommit, TxRollback, TxUnknown:
		return st
	}
	logAt(log, LogError, "local transaction returned an unknown state; the transaction stays open", "msgId", res.MsgID, "state", st.String())
	return TxUnknown
}

func (p *Producer) sendInTxRemoting(ctx context.Context, t *rmqProducer, o *outMsg, local LocalTransaction) (TransactionResult, error) {
	if p.cfg.txChecker == nil {
		return TransactionResult{}, fmt.Errorf("%w: transactions over the remoting transport need WithTransactionChecker", ErrInvalidOption)
	}
	props := o.m.wireProperties(o.id)
	props[protocol.PropTransaction] = "true"
	props[protocol.PropProducerGroup] = p.cfg.group
	o = &outMsg{m: o.m, id: o.id, props: protocol.EncodeProperties(props)}
	o.size = len(o.m.Body) + len(o.props)
	pick := p.pickFor(o, nil)
	var avoid []string
	var res SendResult
	var addr string
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
		var broker string
		var err error
		res, addr, broker, err = t.sendHalf(actx, o, pick, avoid)
		cancel()
		if err == nil {
			break
		}
		if attempt >= p.cfg.retries || !retriable(err) || ctx.Err() != nil {
			p.stats.failures.Add(1)
			return TransactionResult{}, err
		}
		p.stats.retries.Add(1)
		if broker != "" {
			avoid = append(avoid, broker)
		}
	}
	p.stats.messages.Add(1)
	st := runLocal(ctx, local, res, p.cfg.logger)
	out := TransactionResult{SendResult: res, State: st}
	_, off, err := protocol.ParseOffsetMsgID(res.OffsetMsgID)
	if err != nil {
		return out, fmt.Errorf("%w: the broker answered message id %q: %v", ErrTransactionEnd, res.OffsetMsgID, err)
	}
	req := endTxRequest(p.cfg.group, res.QueueOffset, off, st, false, o.id)
	ectx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
	defer cancel()
	resp, err := t.cmd.Invoke(ectx, addr, req)
	if err == nil && resp.Code != protocol.RespSuccess {
		err = brokerErr(addr, resp)
	}
	if err != nil {
		logAt(p.cfg.logger, LogWarn, "end transaction failed; the broker will check it", "msgId", o.id, "state", st.String(), "err", err)
		return out, fmt.Errorf("%w: %w", ErrTransactionEnd, err)
	}
	return out, nil
}

// endTxRequest builds END_TRANSACTION.
func endTxRequest(group string, queueOffset, commitLogOffset int64, st TransactionState, fromCheck bool, msgID string) *remoting.Command {
	return remoting.NewRequest(protocol.ReqEndTransaction, map[string]string{
		"producerGroup": group, "tranStateTableOffset": i64(queueOffset), "commitLogOffset": i64(commitLogOffset),
		"commitOrRollback": itoa(st.wire()), "fromTransactionCheck": boolStr(fromCheck),
		"msgId": msgID, "transactionId": msgID,
	}, nil)
}

// sendHalf sends o as a half message to a queue of its topic; it returns
// the result, the broker's address and name.
func (t *rmqProducer) sendHalf(ctx context.Context, o *outMsg, pick func([]MessageQueue) MessageQueue, avoid []string) (SendResult, string, string, error) {
	topic := o.m.Topic
	r, err := t.routes.get(ctx, topic, true)
	if err != nil {
		return SendResult{}, "", "", err
	}
	qs := r.publish
	if len(avoid) > 0 {
		var keep []MessageQueue
		for _, q := range qs {
			if !contains(avoid, q.BrokerName) {
				keep = append(keep, q)
			}
		}
		if len(keep) > 0 {
			qs = keep
		}
	}
	if len(qs) == 0 {
		return SendResult{}, "", "", ErrNoQueue
	}
	mq := pick(qs)
	addr, ok := r.brokers[mq.BrokerName]
	if !ok {
		return SendResult{}, "", mq.BrokerName, ErrNoQueue
	}
	if err := t.tx.announce(ctx, t, addr); err != nil {
		return SendResult{}, addr, mq.BrokerName, err
	}
	req := sendRequest(t.cfg.group, mq, []*outMsg{o}, defaultAutoCreateQueueNums)
	req.Set("sysFlag", itoa(int(protocol.SysFlagTransactionPrepared)))
	t.stats.requests.Add(1)
	resp, err := t.cmd.Invoke(ctx, addr, req)
	if err != nil {
		if errors.Is(err, remoting.ErrClientClosed) {
			err = ErrClosed
		}
		return SendResult{}, addr, mq.BrokerName, err
	}
	res, err := sendResults(addr, mq, []*outMsg{o}, resp)
	if err != nil {
		return SendResult{}, addr, mq.BrokerName, err
	}
	return res[0], addr, mq.BrokerName, nil
}

// txConns remembers the broker connections a transactional producer has
// announced itself on with a heartbeat.
type txConns struct {
	mu   sync.Mutex
	seen map[string]*remoting.Conn // address → connection heartbeated
}

// announce heartbeats addr unless the current connection to it already
// carried one, so that the broker can send check-backs there.
func (a *txConns) announce(ctx context.Context, t *rmqProducer, addr string) error {
	c, err := t.cmd.Conn(ctx, addr)
	if err != nil {
		return err
	}
	a.mu.Lock()
	done := a.seen[addr] == c
	a.mu.Unlock()
	if done {
		return nil
	}
	body, err := remoting.EncodeBody(&remoting.HeartbeatData{ClientID: t.clientID,
		ProducerDataSet: []remoting.ProducerData{{GroupName: t.cfg.group}}, ConsumerDataSet: []remoting.ConsumerData{}})
	if err != nil {
		return err
	}
	resp, err := c.Invoke(ctx, remoting.NewRequest(protocol.ReqHeartBeat, nil, body))
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return brokerErr(addr, resp)
	}
	a.mu.Lock()
	if a.seen == nil {
		a.seen = make(map[string]*remoting.Conn)
	}
	a.seen[addr] = c
	a.mu.Unlock()
	return nil
}

// txCheckHandler serves CHECK_TRANSACTION_STATE on a producer's broker
// connections.
type txCheckHandler struct {
	cfg *config
}

func (h txCheckHandler) ServeRemoting(c *remoting.Conn, req *remoting.Command) {
	if req.Code != protocol.ReqCheckTransactionState {
		_ = c.Reply(remoting.NewResponse(req, protocol.RespRequestCodeNotSupported,
			"request code "+strconv.Itoa(int(req.Code))+" not supported by a producer"))
		return
	}
	st, queueOffset, clOffset, msgID, err := h.check(req)
	if err != nil {
		logAt(h.cfg.logger, LogWarn, "transaction check refused", "broker", c.RemoteAddr(), "err", err)
		return
	}
	if err := c.SendOneway(endTxRequest(h.cfg.group, queueOffset, clOffset, st, true, msgID)); err != nil {
		logAt(h.cfg.logger, LogWarn, "transaction check: answer", "broker", c.RemoteAddr(), "msgId", msgID, "err", err)
	}
}

// check decodes a check-back and runs the checker.
func (h txCheckHandler) check(req *remoting.Command) (st TransactionState, queueOffset, clOffset int64, msgID string, err error) {
	if queueOffset, err = req.Int64("tranStateTableOffset"); err != nil {
		return
	}
	if clOffset, err = req.Int64("commitLogOffset"); err != nil {
		return
	}
	msgs, err := decodePulled(req.Body, MessageQueue{})
	if err != nil {
		return
	}
	if len(msgs) != 1 {
		err = fmt.Errorf("client: a transaction check carries %d messages, want 1", len(msgs))
		return
	}
	m := msgs[0]
	rec, _ := protocol.Decode(req.Body) // decoded above
	m.Queue = MessageQueue{Topic: m.Topic, QueueID: int(rec.QueueID)}
	msgID = req.StringOr("transactionId", "")
	if msgID == "" {
		msgID = m.MsgID
	}
	if g := m.props[protocol.PropProducerGroup]; g != "" && g != h.cfg.group {
		err = fmt.Errorf("client: a transaction of group %s checked on a producer of group %s", g, h.cfg.group)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), txCheckTimeout)
	defer cancel()
	st = runChecker(ctx, h.cfg.txChecker, m, h.cfg.logger)
	logAt(h.cfg.logger, LogDebug, "transaction checked", "msgId", msgID, "state", st.String())
	return
}

// runChecker runs fn, a panic or an unknown value counting as TxUnknown.
func runChecker(ctx context.Context, fn TransactionChecker, m *MessageExt, log Logger) (st TransactionState) {
	defer func() {
		if r := recover(); r != nil {
			logAt(log, LogError, "transaction checker panicked", "msgId", m.MsgID, "panic", fmt.Sprint(r))
			st = TxUnknown
		}
	}()
	st = fn(ctx, m)
	switch st {
	case TxCommit, TxRollback:
		return st
	}
	return TxUnknown
}

// httpTxInfo is the broker's answer about an HTTP transaction.
type httpTxInfo struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// sendInTxHTTP runs a transaction over the HTTP API: begin, send the
// message into it, run local, commit or abort. An unknown outcome leaves
// the transaction to the broker, which rolls it back at its timeout.
func (p *Producer) sendInTxHTTP(ctx context.Context, t *httpProducer, o *outMsg, local LocalTransaction) (TransactionResult, error) {
	topic := o.m.Topic
	base := "/v1/topics/" + url.PathEscape(topic) + "/transactions"
	var tx httpTxInfo
	var res []SendResult
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
		err := httpCall(actx, p.cfg, http.MethodPost, base, nil, map[string]string{"timeout": httpTxTimeout}, &tx)
		if err == nil {
			var qid *int32
			var qs []MessageQueue
			if qs, err = t.queues(actx, topic); err == nil && len(qs) > 0 {
				q := int32(p.pickFor(o, nil)(qs).QueueID)
				qid = &q
			}
			if err == nil {
				res, _, err = t.produce(actx, topic, base+"/"+url.PathEscape(tx.ID)+"/messages", []*outMsg{o}, qid)
			}
		}
		cancel()
		if err == nil {
			break
		}
		if attempt >= p.cfg.retries || !retriable(err) || ctx.Err() != nil {
			p.stats.failures.Add(1)
			return TransactionResult{}, err
		}
		p.stats.retries.Add(1)
	}
	p.stats.messages.Add(1)
	st := runLocal(ctx, local, res[0], p.cfg.logger)
	out := TransactionResult{SendResult: res[0], State: st}
	if st == TxUnknown {
		return out, nil
	}
	end := "/commit"
	if st == TxRollback {
		end = "/abort"
	}
	ectx, cancel := context.WithTimeout(ctx, p.cfg.sendTimeout)
	defer cancel()
	if err := httpCall(ectx, p.cfg, http.MethodPost, base+"/"+url.PathEscape(tx.ID)+end, nil, nil, &tx); err != nil {
		return out, fmt.Errorf("%w: %w", ErrTransactionEnd, err)
	}
	return out, nil
}

// httpTxTimeout is the timeout of the SDK's HTTP transactions: the time
// the local transaction has before the broker rolls it back.
const httpTxTimeout = "60s"
