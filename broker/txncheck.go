package broker

// The check-backs of open transactions (transaction.go): every
// transaction_check_interval, CHECK_TRANSACTION_STATE to a live producer
// of each half's group, and parking after transaction_check_max checks.

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// checks runs the check-backs until stop is closed.
func (s *txnService) checks(stop <-chan struct{}) {
	everyTick(stop, orDur(s.cfg().TransactionCheckInterval.D(), DefaultTransactionCheckInterval), s.checkRound)
}

// everyTick calls fn with the time of each tick, every apart, until stop
// is closed.
func everyTick(stop <-chan struct{}, every time.Duration, fn func(now time.Time)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			fn(now)
		}
	}
}

func orDur(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// checkRound runs one round of checks: parks the halves checked
// transaction_check_max times and checks the other open halves older
// than transaction_timeout.
func (s *txnService) checkRound(now time.Time) {
	if s.writable() != "" {
		return
	}
	cfg := s.cfg()
	timeout := orDur(cfg.TransactionTimeout.D(), DefaultTransactionTimeout)
	maxChecks := cfg.TransactionCheckMax
	if maxChecks <= 0 {
		maxChecks = DefaultTransactionCheckMax
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	if err := s.syncLocked(ctx, 0); err != nil {
		s.log.Warn().Err(err).Msg("transaction check: read the open transactions")
		return
	}
	s.expireHTTPTxLocked(now) // api_txhttp.go
	check, park := s.tab.due(now, timeout, maxChecks)
	for _, h := range park {
		if err := s.closeHalfLocked(h, protocol.TransactionOpParked); err != nil {
			s.log.Warn().Err(err).Int64("offset", h.Offset).Msg("park a transaction")
			continue
		}
		s.log.Warn().Str("group", h.Group).Str("topic", h.Topic).Int64("offset", h.Offset).Int("checks", h.Checks).
			Msg("transaction left open after its last check: parked in " + protocol.TransCheckMaxTimeTopic)
	}
	for _, h := range check {
		s.checkHalfLocked(h)
	}
}

// checkHalfLocked sends CHECK_TRANSACTION_STATE for h to one live producer
// of its group and counts the check (sent or not, as RocketMQ does: a
// group with no producer left runs out of checks too).
func (s *txnService) checkHalfLocked(h openHalf) {
	n := h.Checks + 1
	s.tab.setChecks(h.Offset, n)
	if err := s.meta.db.Set([]byte(txnCheckKey(h.Offset)), []byte(strconv.Itoa(n)), nil); err != nil {
		s.log.Warn().Err(err).Int64("offset", h.Offset).Msg("save a transaction's check count")
	}
	s.outcomes.WithLabelValues("checked").Inc()
	conns := s.clients.producerConns(h.Group)
	if len(conns) == 0 {
		s.log.Debug().Str("group", h.Group).Int64("offset", h.Offset).Msg("transaction check: no producer of the group is connected")
		return
	}
	req, err := s.checkRequest(h)
	if err != nil {
		s.log.Warn().Err(err).Int64("offset", h.Offset).Msg("transaction check")
		return
	}
	// Each check asks the next producer, so a dead one does not keep
	// the half from being resolved by another.
	c := conns[h.Checks%len(conns)]
	if err := c.SendOneway(req); err != nil {
		s.log.Debug().Err(err).Str("group", h.Group).Msg("transaction check: send")
	}
}

// checkRequest builds CHECK_TRANSACTION_STATE for h: the half as a pull
// would return it, with its real topic and queue, as RocketMQ sends it.
func (s *txnService) checkRequest(h openHalf) (*remoting.Command, error) {
	rec, _, err := s.clog.ReadRecord(h.Offset, nil)
	if err != nil {
		return nil, err
	}
	m := realMessage(&rec, protocol.SysFlagTransactionPrepared)
	p := protocol.ParseProperties(rec.Properties)
	p[protocol.PropTransactionCheckTimes] = strconv.Itoa(h.Checks + 1)
	m.Properties = protocol.EncodeProperties(p)
	size, err := m.EncodedSize(0)
	if err != nil {
		return nil, err
	}
	body := commitlog.AppendRecord(nil, &m, size)
	protocol.SealRecord(body, rec.QueueOffset, rec.PhysicalOffset, rec.StoreTimestamp)
	offID := protocol.OffsetMsgID(s.host(), h.Offset)
	return remoting.NewRequest(protocol.ReqCheckTransactionState, map[string]string{
		"tranStateTableOffset": strconv.FormatInt(h.QueueOffset, 10),
		"commitLogOffset":      strconv.FormatInt(h.Offset, 10),
		"msgId":                orDefault(h.UniqKey, offID),
		"transactionId":        h.UniqKey,
		"offsetMsgId":          offID,
	}, body), nil
}

// producerConns returns the connections of a producer group's live
// clients.
func (r *clientRegistry) producerConns(group string) []*remoting.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*remoting.Conn
	for _, cc := range r.producers[group] {
		out = append(out, cc.conn)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}
