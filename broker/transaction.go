package broker

// Transactional messages, as RocketMQ stores them.
//
// A half message (sysFlag TRANSACTION_PREPARED or property TRAN_MSG=true,
// with PGROUP naming its producer group) is stored in
// RMQ_SYS_TRANS_HALF_TOPIC queue 0, its destination kept in REAL_TOPIC /
// REAL_QID, where no consumer reads it. The send answers the half's offset
// message id, from which the client takes the commitLogOffset of its
// END_TRANSACTION. A commit appends the real message (transaction flags
// cleared) and an op record to RMQ_SYS_TRANS_OP_HALF_TOPIC in one append;
// a rollback appends only the op record. An op record's body is the
// half's commitlog offset in decimal, its property __TXOP what was done.
//
// The open transactions are the halves without an op record: rebuilt on
// the first use after a start by reading the op queue, then the half
// queue, and kept up to date by this process (which writes every op
// record while holding txnService.mu). The number of check-backs of each
// open half is kept in the metadata store (txck/<offset>).
//
// # Goroutines
//
// checks, started by the Broker and stopped by its stop channel: every
// transaction_check_interval it sends CHECK_TRANSACTION_STATE for the
// halves older than transaction_timeout to a live producer of their group,
// and after transaction_check_max checks parks the half in
// TRANS_CHECK_MAX_TIME_TOPIC with an op record.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Defaults of the transaction configuration keys (RocketMQ's).
const (
	DefaultTransactionTimeout       = 6 * time.Second
	DefaultTransactionCheckInterval = 30 * time.Second
	DefaultTransactionCheckMax      = 15
)

// txnWait bounds how long END_TRANSACTION waits for the dispatcher to
// index the half it names.
const txnWait = 3 * time.Second

// txnService keeps the transactions: it routes halves, ends them, checks
// them back and serves the HTTP transactions (api_txhttp.go). mu guards
// the state below it and is held across the appends of op records, so two
// END_TRANSACTIONs of one half cannot both act. Lock order: mu →
// commitlog, consume queue, metadata store.
type txnService struct {
	clog     *commitlog.Log
	cq       *consumequeue.Store
	meta     *metaStore
	topics   *topicTable
	clients  *clientRegistry // the producers a check goes to
	log      zerolog.Logger
	cfg      func() *Config        // the configuration in force
	host     func() netip.AddrPort // the advertised address, of message ids
	writable func() string         // why sends are refused, "" when they are not (broker.go)
	send     txnSender             // the send path (send.go); set once it is built

	mu        sync.Mutex
	loaded    bool
	startEnd  int64 // the log's end when the broker opened: what the load waits for
	tab       *txnTable
	halfNext  int64         // next half-queue offset to read
	loadCheck map[int64]int // check counts read from the metadata store, applied as halves are read

	httpMu sync.Mutex         // guards http; taken after mu when both are held
	http   map[string]*httpTx // HTTP transactions begun or ended lately (api_txhttp.go)

	outcomes *prometheus.CounterVec // ferry_transactions_total by outcome
}

// txnSender is the send path as the transaction service uses it (send.go,
// special.go).
type txnSender interface {
	appendMessages(msgs []commitlog.Message, answer func(res []commitlog.AppendResult, err error))
	routeSpecial(m *commitlog.Message, h *sendHeader) error
}

// txnCheckKey is the metadata key of a half's check count.
func txnCheckKey(off int64) string { return fmt.Sprintf("txck/%020d", off) }

// open prepares the transaction state at open and registers its metrics
// with reg; the open halves are read on first use.
func (s *txnService) open(reg *prometheus.Registry) error {
	s.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_transactions_total",
		Help: "Transactions committed, rolled back and parked after their last check, and check-backs sent, by outcome."},
		[]string{"outcome"})
	if err := reg.Register(s.outcomes); err != nil {
		return err
	}
	s.tab = newTxnTable()
	s.startEnd = s.clog.WrittenOffset()
	s.loadCheck = make(map[int64]int)
	return s.meta.scan("txck/", func(k, v []byte) error {
		off, err1 := strconv.ParseInt(string(k[len("txck/"):]), 10, 64)
		n, err2 := strconv.Atoi(string(v))
		if err1 == nil && err2 == nil {
			s.loadCheck[off] = n
		}
		return nil
	})
}

// isHalf reports a message sent as a transaction's half.
func isHalf(m *commitlog.Message) bool {
	if m.SysFlag&protocol.SysFlagTransactionMask == protocol.SysFlagTransactionPrepared {
		return true
	}
	v, _ := protocol.Property(m.Properties, protocol.PropTransaction)
	return v == "true"
}

// routeHalf moves a half message to the half topic, keeping its real
// topic and queue; it reports whether m is a half.
func (s *txnService) routeHalf(m *commitlog.Message, h *sendHeader, batch bool) (bool, error) {
	if !isHalf(m) {
		return false, nil
	}
	if batch {
		return true, fmt.Errorf("%w: a batch may not hold transactional messages", ErrInvalidRequest)
	}
	p := protocol.ParseProperties(m.Properties)
	if p[protocol.PropProducerGroup] == "" {
		if h.producerGroup == "" {
			return true, fmt.Errorf("%w: a transactional message needs its producer group (%s)", ErrInvalidRequest, protocol.PropProducerGroup)
		}
		p[protocol.PropProducerGroup] = h.producerGroup
	}
	p[protocol.PropTransaction] = "true"
	delete(p, protocol.PropTransactionCheckTimes)
	if p[protocol.PropProducerGroup] != httpTxGroup {
		// Only the HTTP API makes halves of HTTP transactions (api_txhttp.go).
		delete(p, propHTTPTx)
		delete(p, propHTTPTxExpires)
	}
	m.Properties = protocol.EncodeProperties(p)
	m.SysFlag = m.SysFlag&^protocol.SysFlagTransactionMask | protocol.SysFlagTransactionPrepared
	if err := s.ensureTopics(protocol.TransHalfTopic, protocol.TransOpHalfTopic); err != nil {
		return true, err
	}
	return true, schedule(m, protocol.TransHalfTopic, 0, nil)
}

// ensureTopics creates transaction topics (one queue each) on first
// use, as RocketMQ does: a broker without transactions lists none.
func (s *txnService) ensureTopics(topics ...string) error {
	perm := int32(protocol.PermRead | protocol.PermWrite)
	for _, t := range topics {
		if _, err := s.topics.ensure(TopicConfig{TopicName: t, ReadQueueNums: 1, WriteQueueNums: 1, Perm: perm}); err != nil {
			return err
		}
	}
	return nil
}

// endTxnHeader is END_TRANSACTION's header.
type endTxnHeader struct {
	producerGroup        string
	tranStateTableOffset int64
	commitLogOffset      int64
	commitOrRollback     int32
	fromTransactionCheck bool
	msgID                string
	transactionID        string
}

func parseEndTxnHeader(req *remoting.Command) (endTxnHeader, error) {
	var h endTxnHeader
	var err error
	if h.producerGroup, err = req.String("producerGroup"); err != nil {
		return h, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if h.commitLogOffset, err = req.Int64("commitLogOffset"); err != nil {
		return h, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if h.commitLogOffset < 0 {
		return h, fmt.Errorf("%w: commitLogOffset %d is negative", ErrInvalidRequest, h.commitLogOffset)
	}
	if h.commitOrRollback, err = req.Int32("commitOrRollback"); err != nil {
		return h, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	switch h.commitOrRollback {
	case protocol.TransactionUnknown, protocol.TransactionCommit, protocol.TransactionRollback:
	default:
		return h, fmt.Errorf("%w: commitOrRollback %d is none of 0, 8 (commit), 12 (rollback)", ErrInvalidRequest, h.commitOrRollback)
	}
	if h.tranStateTableOffset, err = req.Int64Or("tranStateTableOffset", -1); err != nil {
		return h, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if h.fromTransactionCheck, err = req.BoolOr("fromTransactionCheck", false); err != nil {
		return h, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	h.msgID = req.StringOr("msgId", "")
	h.transactionID = req.StringOr("transactionId", "")
	return h, nil
}

// errTxn marks END_TRANSACTIONs that name no half of theirs.
var errTxn = errors.New("broker: transaction")

// handleEndTransaction serves END_TRANSACTION.
func (s *txnService) handleEndTransaction(c *remoting.Conn, req *remoting.Command) {
	reply := func(code int16, remark string) { _ = c.Reply(remoting.NewResponse(req, code, remark)) }
	h, err := parseEndTxnHeader(req)
	if err != nil {
		reply(protocol.RespSystemError, err.Error())
		return
	}
	if h.commitOrRollback == protocol.TransactionUnknown {
		// The producer does not know yet: the half stays open for checks.
		reply(protocol.RespSuccess, "")
		return
	}
	if why := s.writable(); why != "" {
		reply(protocol.RespServiceNotAvailable, "service not available now: "+why)
		return
	}
	done, err := s.end(h)
	switch {
	case err != nil:
		s.log.Warn().Err(err).Str("group", h.producerGroup).Int64("offset", h.commitLogOffset).Msg("end transaction")
		reply(sendError(err))
	case !done:
		reply(protocol.RespSuccess, "transaction already ended")
	default:
		reply(protocol.RespSuccess, "")
	}
}

// end commits or rolls back the half h names; it reports false when an
// op record had already closed it.
func (s *txnService) end(h endTxnHeader) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	if err := s.syncLocked(ctx, h.commitLogOffset+1); err != nil {
		return false, err
	}
	half, open := s.tab.get(h.commitLogOffset)
	if !open {
		rec, _, err := s.clog.ReadRecord(h.commitLogOffset, nil)
		if err != nil || string(rec.Topic) != protocol.TransHalfTopic {
			return false, fmt.Errorf("%w: no half message at commitlog offset %d", ErrInvalidRequest, h.commitLogOffset)
		}
		return false, nil
	}
	switch {
	case half.Group != h.producerGroup:
		return false, fmt.Errorf("%w: the half at %d belongs to producer group %s, not %s", errTxnGroup, h.commitLogOffset, half.Group, h.producerGroup)
	case h.msgID != "" && half.UniqKey != "" && h.msgID != half.UniqKey:
		return false, fmt.Errorf("%w: the half at %d is message %s, not %s", ErrInvalidRequest, h.commitLogOffset, half.UniqKey, h.msgID)
	case h.tranStateTableOffset >= 0 && h.tranStateTableOffset != half.QueueOffset:
		return false, fmt.Errorf("%w: the half at %d has queue offset %d, not %d", ErrInvalidRequest, h.commitLogOffset, half.QueueOffset, h.tranStateTableOffset)
	}
	op := protocol.TransactionOpRollback
	if h.commitOrRollback == protocol.TransactionCommit {
		op = protocol.TransactionOpCommit
	}
	if err := s.closeHalfLocked(half, op); err != nil {
		return false, err
	}
	return true, nil
}

var errTxnGroup = fmt.Errorf("%w: producer group wrong", ErrInvalidRequest)

// closeHalfLocked appends, in one append, what op does with the half (a
// commit: the real message; parked: a copy in the parking topic) and the
// op record that closes it, then forgets the half.
func (s *txnService) closeHalfLocked(half openHalf, op string) error {
	return s.closeHalvesLocked([]openHalf{half}, op)
}

// closeHalvesLocked closes several halves with op in one append.
func (s *txnService) closeHalvesLocked(halves []openHalf, op string) error {
	msgs := make([]commitlog.Message, 0, 2*len(halves))
	for _, half := range halves {
		var err error
		if msgs, err = s.closeRecords(msgs, half, op); err != nil {
			return err
		}
	}
	var appendErr error
	s.send.appendMessages(msgs, func(_ []commitlog.AppendResult, err error) { appendErr = err })
	if appendErr != nil && !errors.Is(appendErr, commitlog.ErrFlushTimeout) {
		return appendErr
	}
	for _, half := range halves {
		s.tab.close(half.Offset)
		if half.Checks > 0 {
			if err := s.meta.delete(txnCheckKey(half.Offset)); err != nil {
				s.log.Warn().Err(err).Int64("offset", half.Offset).Msg("forget a transaction's check count")
			}
		}
		s.outcomes.WithLabelValues(op).Inc()
		s.log.Debug().Str("group", half.Group).Str("topic", half.Topic).Int64("offset", half.Offset).Str("op", op).Msg("transaction ended")
	}
	return nil
}

// closeRecords appends to msgs what closing half with op writes.
func (s *txnService) closeRecords(msgs []commitlog.Message, half openHalf, op string) ([]commitlog.Message, error) {
	rec, _, err := s.clog.ReadRecord(half.Offset, nil)
	if err != nil {
		return msgs, fmt.Errorf("read the half at %d: %w", half.Offset, err)
	}
	switch op {
	case protocol.TransactionOpCommit:
		m := realMessage(&rec, protocol.SysFlagTransactionCommit)
		if err := s.send.routeSpecial(&m, &sendHeader{}); err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	case protocol.TransactionOpParked:
		if err := s.ensureTopics(protocol.TransCheckMaxTimeTopic); err != nil {
			return msgs, err
		}
		m := realMessage(&rec, 0)
		p := protocol.ParseProperties(m.Properties)
		p[protocol.PropRealTopic] = m.Topic
		p[protocol.PropRealQueueID] = strconv.Itoa(int(m.QueueID))
		p[protocol.PropTransactionCheckTimes] = strconv.Itoa(half.Checks)
		m.Properties = protocol.EncodeProperties(p)
		m.Topic, m.QueueID = protocol.TransCheckMaxTimeTopic, 0
		msgs = append(msgs, m)
	}
	msgs = append(msgs, commitlog.Message{
		Topic: protocol.TransOpHalfTopic, Body: []byte(strconv.FormatInt(half.Offset, 10)),
		Properties: protocol.EncodeProperties(map[string]string{
			protocol.PropTags: protocol.TransactionOpTag, protocol.PropTransactionOp: op,
			protocol.PropProducerGroup: half.Group,
		}),
		BornTimestamp: time.Now().UnixMilli(), BornHost: s.host(), StoreHost: s.host(),
	})
	return msgs, nil
}

// realMessage rebuilds the message a half stands for: its real topic and
// queue, the transaction properties cleared, sysFlag's transaction bits
// set to txFlag.
func realMessage(rec *protocol.Record, txFlag int32) commitlog.Message {
	p := protocol.ParseProperties(rec.Properties)
	topic := p[protocol.PropRealTopic]
	qid, _ := strconv.Atoi(p[protocol.PropRealQueueID])
	for _, k := range []string{protocol.PropRealTopic, protocol.PropRealQueueID, protocol.PropTransaction, protocol.PropTransactionCheckTimes} {
		delete(p, k)
	}
	return commitlog.Message{
		Topic: topic, QueueID: int32(qid), Flag: rec.Flag,
		SysFlag: rec.SysFlag&^(protocol.SysFlagTransactionMask|protocol.SysFlagBornHostV6|protocol.SysFlagStoreHostV6) | txFlag,
		Body:    rec.Body, Properties: protocol.EncodeProperties(p), BornTimestamp: rec.BornTimestamp,
		BornHost: rec.BornHost, StoreHost: rec.StoreHost, ReconsumeTimes: rec.ReconsumeTimes,
		PreparedTransactionOffset: rec.PhysicalOffset,
	}
}

// syncLocked loads the transaction state on first use and reads the
// halves indexed since, waiting until the dispatcher has indexed the log
// up to upTo.
func (s *txnService) syncLocked(ctx context.Context, upTo int64) error {
	if !s.loaded {
		if err := s.cq.WaitDispatched(ctx, s.startEnd); err != nil {
			return fmt.Errorf("broker: wait for the transaction topics to be indexed: %w", err)
		}
		if err := s.readQueue(protocol.TransOpHalfTopic, 0, func(r *protocol.Record) {
			if off, err := strconv.ParseInt(string(r.Body), 10, 64); err == nil {
				s.tab.addOp(off)
			}
		}); err != nil {
			return err
		}
		if err := s.readHalvesLocked(); err != nil {
			return err
		}
		// Every half older than an op record has been read now: the op
		// records left over are of halves retention deleted. Check counts
		// left over are of halves closed just before a crash.
		clear(s.tab.closed)
		for off := range s.loadCheck {
			if err := s.meta.delete(txnCheckKey(off)); err != nil {
				return err
			}
		}
		clear(s.loadCheck)
		s.loaded = true
	}
	if upTo > s.cq.DispatchedOffset() {
		if err := s.cq.WaitDispatched(ctx, min(upTo, s.clog.WrittenOffset())); err != nil {
			return fmt.Errorf("broker: wait for the half message to be indexed: %w", err)
		}
	}
	return s.readHalvesLocked()
}

// readHalvesLocked reads the halves indexed since the last call.
func (s *txnService) readHalvesLocked() error {
	if low, err := s.cq.MinOffset(protocol.TransHalfTopic, 0); err == nil && s.halfNext < low {
		s.halfNext = low
	}
	var next int64
	err := s.readQueueFrom(protocol.TransHalfTopic, 0, s.halfNext, func(r *protocol.Record) {
		next = r.QueueOffset + 1
		p := protocol.ParseProperties(r.Properties)
		qid, _ := strconv.Atoi(p[protocol.PropRealQueueID])
		h := openHalf{Offset: r.PhysicalOffset, QueueOffset: r.QueueOffset, Group: p[protocol.PropProducerGroup],
			Topic: p[protocol.PropRealTopic], QueueID: int32(qid), UniqKey: p[protocol.PropUniqKey],
			StoredAt: time.UnixMilli(r.StoreTimestamp), Checks: s.loadCheck[r.PhysicalOffset],
			HTTPTx: p[propHTTPTx]}
		if ms, err := strconv.ParseInt(p[propHTTPTxExpires], 10, 64); err == nil {
			h.Expires = time.UnixMilli(ms)
		}
		if s.tab.addHalf(h) {
			delete(s.loadCheck, r.PhysicalOffset) // what is left is deleted after the load
		}
	})
	if next > s.halfNext {
		s.halfNext = next
	}
	return err
}

func (s *txnService) readQueue(topic string, queue int32, fn func(r *protocol.Record)) error {
	low, err := s.cq.MinOffset(topic, queue)
	if err != nil {
		low = 0
	}
	return s.readQueueFrom(topic, queue, low, fn)
}

// readQueueFrom calls fn for each record of (topic, queue) from offset
// from to the queue's end.
func (s *txnService) readQueueFrom(topic string, queue int32, from int64, fn func(r *protocol.Record)) error {
	var entries []consumequeue.Entry
	var buf []byte
	for {
		var err error
		entries, err = s.cq.Get(topic, queue, from, 256, entries)
		if err != nil {
			return fmt.Errorf("broker: read %s/%d at %d: %w", topic, queue, from, err)
		}
		if len(entries) == 0 {
			return nil
		}
		for _, e := range entries {
			from = e.QueueOffset + 1
			if e.Size == 0 {
				continue
			}
			var rec protocol.Record
			rec, buf, err = s.clog.ReadRecord(e.Offset, buf[:0])
			if err != nil {
				return fmt.Errorf("broker: read %s/%d entry %d: %w", topic, queue, e.QueueOffset, err)
			}
			fn(&rec)
		}
	}
}
