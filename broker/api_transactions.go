package broker

import (
	"context"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Transactions lists the open transactions, oldest first.
func (b *Broker) Transactions() ([]protocol.OpenTransaction, error) { return b.txn.list() }

// list lists the open transactions, oldest first.
func (s *txnService) list() ([]protocol.OpenTransaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), txnWait)
	defer cancel()
	if err := s.syncLocked(ctx, 0); err != nil {
		return nil, err
	}
	now := time.Now()
	open := s.tab.list()
	out := make([]protocol.OpenTransaction, len(open))
	for i, h := range open {
		out[i] = protocol.OpenTransaction{CommitLogOffset: h.Offset, QueueOffset: h.QueueOffset, ProducerGroup: h.Group,
			Topic: h.Topic, QueueID: h.QueueID, MsgID: h.UniqKey, StoredMs: h.StoredAt.UnixMilli(),
			AgeMs: now.Sub(h.StoredAt).Milliseconds(), Checks: h.Checks, HTTPTx: h.HTTPTx}
		if h.HTTPTx != "" {
			out[i].ExpiresMs = h.Expires.UnixMilli()
		}
	}
	return out, nil
}

// handleTxList serves FERRY_TX_LIST.
func (b *Broker) handleTxList(c *remoting.Conn, req *remoting.Command) {
	list, err := b.Transactions()
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	replyJSON(c, req, list)
}

// handleProducerList serves FERRY_PRODUCER_LIST.
func (b *Broker) handleProducerList(c *remoting.Conn, req *remoting.Command) {
	replyJSON(c, req, b.idem.states())
}
