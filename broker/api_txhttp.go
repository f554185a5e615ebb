package broker

// HTTP transactions: a client that cannot answer check-backs begins a
// transaction on a topic, sends messages into it and commits or aborts it.
//
//	POST /v1/topics/{topic}/transactions                 {"timeout": "60s"} → 201 {"id", ...}
//	POST /v1/topics/{topic}/transactions/{id}/messages   the body of POST /v1/topics/{topic}/messages
//	POST /v1/topics/{topic}/transactions/{id}/commit     → {"state": "committed", "messages": n}
//	POST /v1/topics/{topic}/transactions/{id}/abort      → {"state": "aborted", "messages": n}
//
// Each message sent into a transaction is stored as a half message, as a
// remoting producer's is (transaction.go), with PGROUP httpTxGroup and two
// more properties: __HTTPTX (the transaction id) and __HTTPTXEXP (when it
// expires, Unix ms). Commit or abort closes all of them in one append.
// Nobody can be asked about an HTTP transaction, so its halves are never
// checked: the check loop rolls back those whose expiry has passed (at the
// first round after it, every transaction_check_interval). The open halves
// are derived from the log, so a restart keeps a transaction that holds a
// message (one with none is forgotten: sending into it answers 404). The
// broker remembers the outcome of an ended transaction for
// httpTxRemember, so a repeated commit or abort gets the same answer.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// Properties of an HTTP transaction's half messages (part of the log format).
const (
	propHTTPTx        = "__HTTPTX"
	propHTTPTxExpires = "__HTTPTXEXP"
	httpTxGroup       = "HTTP_TRANSACTION_PRODUCER"
)

// HTTP transaction timeouts: the default, the bounds, and how long an
// ended transaction's outcome is remembered.
const (
	DefaultHTTPTxTimeout = time.Minute
	minHTTPTxTimeout     = time.Second
	maxHTTPTxTimeout     = time.Hour
	httpTxRemember       = 10 * time.Minute
)

// Outcomes of an HTTP transaction.
const (
	txCommitted = "committed"
	txAborted   = "aborted"
	txExpired   = "expired"
)

// httpTx is one HTTP transaction. send holds it shared while a request
// stores messages into it and exclusively while it ends, so a message is
// either in the commit or refused. ended and endedAt are guarded by
// txnService.httpMu.
type httpTx struct {
	id      string
	topic   string
	expires time.Time
	send    sync.RWMutex
	ended   string
	endedAt time.Time
}

// mark makes m a half message of t.
func (t *httpTx) mark(m *commitlog.Message) {
	p := protocol.ParseProperties(m.Properties)
	p[protocol.PropTransaction] = "true"
	p[protocol.PropProducerGroup] = httpTxGroup
	p[propHTTPTx] = t.id
	p[propHTTPTxExpires] = strconv.FormatInt(t.expires.UnixMilli(), 10)
	m.Properties = protocol.EncodeProperties(p)
	m.SysFlag = m.SysFlag&^protocol.SysFlagTransactionMask | protocol.SysFlagTransactionPrepared
}

// HTTPTxInfo is the answer of the HTTP transaction routes.
type HTTPTxInfo struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	ExpiresMs int64  `json:"expires_ms"`
	State     string `json:"state"` // open, committed, aborted, expired
	Messages  int    `json:"messages,omitempty"`
}

// HTTPTxView is the broker's HTTP transactions.
type HTTPTxView struct{ b *Broker }

// Begin begins a transaction on topic that expires after timeout (a
// duration; "" for DefaultHTTPTxTimeout).
func (v HTTPTxView) Begin(topic, timeoutText string) (HTTPTxInfo, error) {
	b := v.b
	if err := b.sender.checkWritable(); err != nil {
		return HTTPTxInfo{}, err
	}
	timeout := DefaultHTTPTxTimeout
	if timeoutText != "" {
		d, err := parseDuration(timeoutText)
		if err != nil || d < minHTTPTxTimeout || d > maxHTTPTxTimeout {
			return HTTPTxInfo{}, fmt.Errorf("%w: timeout %q: want a duration from %v to %v", protocol.ErrHTTPBadInput, timeoutText, minHTTPTxTimeout, maxHTTPTxTimeout)
		}
		timeout = d
	}
	if _, err := b.sender.resolveSendTopic(&sendHeader{topic: topic, queueID: -1}); err != nil {
		return HTTPTxInfo{}, err
	}
	t := b.txn.beginHTTP(topic, timeout)
	return HTTPTxInfo{ID: t.id, Topic: topic, ExpiresMs: t.expires.UnixMilli(), State: "open"}, nil
}

// beginHTTP begins an HTTP transaction on topic that expires after
// timeout.
func (s *txnService) beginHTTP(topic string, timeout time.Duration) *httpTx {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	t := &httpTx{id: strings.ToUpper(hex.EncodeToString(raw[:])), topic: topic, expires: time.Now().Add(timeout)}
	s.httpMu.Lock()
	if s.http == nil {
		s.http = make(map[string]*httpTx)
	}
	s.http[t.id] = t
	s.httpMu.Unlock()
	return t
}

// httpTxOf finds the transaction id of topic: one this process knows, or
// one whose halves the log holds.
func (s *txnService) httpTxOf(topic, id string) (*httpTx, error) {
	notFound := fmt.Errorf("%w: transaction %s of topic %s", protocol.ErrHTTPRouteNotFound, id, topic)
	s.httpMu.Lock()
	t := s.http[id]
	s.httpMu.Unlock()
	if t == nil {
		s.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), txnWait)
		err := s.syncLocked(ctx, 0)
		cancel()
		var halves []openHalf
		if err == nil {
			halves = s.tab.httpTx(id)
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if len(halves) == 0 {
			return nil, notFound
		}
		s.httpMu.Lock()
		if t = s.http[id]; t == nil {
			if s.http == nil {
				s.http = make(map[string]*httpTx)
			}
			t = &httpTx{id: id, topic: halves[0].Topic, expires: halves[0].Expires}
			s.http[id] = t
		}
		s.httpMu.Unlock()
	}
	if t.topic != topic {
		return nil, notFound
	}
	return t, nil
}

// endedLocked reports t's outcome, marking it expired once its time ran
// out; httpMu is held.
func (t *httpTx) endedLocked(now time.Time) string {
	if t.ended == "" && !now.Before(t.expires) {
		t.ended, t.endedAt = txExpired, now
	}
	return t.ended
}

// Send stores messages into transaction id of topic as Produce does;
// read reads the request once the transaction is known to be open.
func (v HTTPTxView) Send(topic, id string, read func() (ProduceRequest, error)) (protocol.HTTPProduceResponse, []error, error) {
	s := v.b.txn
	t, err := s.httpTxOf(topic, id)
	if err != nil {
		return protocol.HTTPProduceResponse{}, nil, err
	}
	t.send.RLock()
	defer t.send.RUnlock()
	s.httpMu.Lock()
	ended := t.endedLocked(time.Now())
	s.httpMu.Unlock()
	if ended != "" {
		return protocol.HTTPProduceResponse{}, nil, fmt.Errorf("%w: transaction %s is %s", protocol.ErrHTTPTxEnded, t.id, ended)
	}
	return v.b.produce(read, t)
}

// End commits (commit) or aborts a transaction: its open halves are
// closed in one append. Ending it again the same way answers the same;
// the other way (or after it expired) is a conflict.
func (v HTTPTxView) End(topic, id string, commit bool) (HTTPTxInfo, error) {
	if err := v.b.sender.checkWritable(); err != nil {
		return HTTPTxInfo{}, err
	}
	return v.b.txn.endHTTP(topic, id, commit)
}

// endHTTP ends HTTP transaction id of topic, as End.
func (s *txnService) endHTTP(topic, id string, commit bool) (HTTPTxInfo, error) {
	outcome := txAborted
	if commit {
		outcome = txCommitted
	}
	t, err := s.httpTxOf(topic, id)
	if err != nil {
		return HTTPTxInfo{}, err
	}
	t.send.Lock() // no send into t is under way from here on
	defer t.send.Unlock()
	info := HTTPTxInfo{ID: t.id, Topic: t.topic, ExpiresMs: t.expires.UnixMilli()}
	s.httpMu.Lock()
	ended := t.endedLocked(time.Now())
	s.httpMu.Unlock()
	if ended == outcome {
		info.State = ended
		return info, nil
	}
	if ended != "" {
		return HTTPTxInfo{}, fmt.Errorf("%w: transaction %s is %s", protocol.ErrHTTPTxEnded, t.id, ended)
	}
	op := protocol.TransactionOpCommit
	if outcome == txAborted {
		op = protocol.TransactionOpRollback
	}
	s.mu.Lock()
	sctx, cancel := context.WithTimeout(context.Background(), txnWait)
	err = s.syncLocked(sctx, s.clog.WrittenOffset())
	cancel()
	var halves []openHalf
	if err == nil {
		halves = s.tab.httpTx(t.id)
		if len(halves) > 0 {
			err = s.closeHalvesLocked(halves, op)
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn().Err(err).Str("transaction", t.id).Msg("end an HTTP transaction")
		return HTTPTxInfo{}, err
	}
	s.httpMu.Lock()
	t.ended, t.endedAt = outcome, time.Now()
	s.httpMu.Unlock()
	info.State, info.Messages = outcome, len(halves)
	return info, nil
}

// expireHTTPTxLocked rolls back the halves of HTTP transactions whose
// time ran out and forgets transactions ended long ago; mu is held.
func (s *txnService) expireHTTPTxLocked(now time.Time) {
	if exp := s.tab.expired(now); len(exp) > 0 {
		if err := s.closeHalvesLocked(exp, protocol.TransactionOpRollback); err != nil {
			s.log.Warn().Err(err).Msg("roll back expired HTTP transactions")
		} else {
			s.log.Info().Int("messages", len(exp)).Msg("rolled back the messages of expired HTTP transactions")
		}
	}
	s.httpMu.Lock()
	defer s.httpMu.Unlock()
	for id, t := range s.http {
		if t.endedLocked(now) != "" && now.Sub(t.endedAt) > httpTxRemember {
			delete(s.http, id)
		}
	}
}
