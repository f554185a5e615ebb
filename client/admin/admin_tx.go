package admin

import (
	"context"
	"fmt"
	"sort"

	"github.com/ferrymq/ferry/protocol"
)

// TransactionInfo is an open transaction and the broker holding its half.
type TransactionInfo struct {
	protocol.OpenTransaction
	Broker string `json:"broker"`
}

// Transactions lists the open transactions of every master, oldest
// first within a broker, brokers by name.
func (a *Admin) Transactions(ctx context.Context) ([]TransactionInfo, error) {
	var out []TransactionInfo
	add := func(name string, list []protocol.OpenTransaction) {
		for _, t := range list {
			out = append(out, TransactionInfo{OpenTransaction: t, Broker: name})
		}
	}
	if a.h != nil {
		self, err := a.h.selfBroker(ctx)
		if err != nil {
			return nil, err
		}
		var list []protocol.OpenTransaction
		if err := a.h.do(ctx, "GET", "/v1/transactions", nil, nil, &list); err != nil {
			return nil, err
		}
		add(self.Name, list)
		return out, nil
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
	for _, b := range bs {
		var list []protocol.OpenTransaction
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqFerryTxList, nil, nil, &list); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		add(b.Name, list)
	}
	return out, nil
}

// Transaction returns the open transaction id names: a message id (the
// half's UNIQ_KEY, one message) or an HTTP transaction's id (each message
// sent into it). It fails when none is open.
func (a *Admin) Transaction(ctx context.Context, id string) ([]TransactionInfo, error) {
	all, err := a.Transactions(ctx)
	if err != nil {
		return nil, err
	}
	var out []TransactionInfo
	for _, t := range all {
		if t.MsgID == id || t.HTTPTx == id {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("client: no open transaction %s", id)
	}
	return out, nil
}

// ProducerInfo is an idempotent producer and the broker that knows it.
type ProducerInfo struct {
	protocol.ProducerState
	Broker string `json:"broker"`
}

// Producers lists the idempotent producers of every master: brokers by
// name, producers by id.
func (a *Admin) Producers(ctx context.Context) ([]ProducerInfo, error) {
	out := []ProducerInfo{}
	add := func(name string, list []protocol.ProducerState) {
		for _, p := range list {
			out = append(out, ProducerInfo{ProducerState: p, Broker: name})
		}
	}
	if a.h != nil {
		self, err := a.h.selfBroker(ctx)
		if err != nil {
			return nil, err
		}
		var list []protocol.ProducerState
		if err := a.h.do(ctx, "GET", "/v1/producers", nil, nil, &list); err != nil {
			return nil, err
		}
		add(self.Name, list)
		return out, nil
	}
	bs, err := a.r.masters(ctx, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
	for _, b := range bs {
		var list []protocol.ProducerState
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqFerryProducerList, nil, nil, &list); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		add(b.Name, list)
	}
	return out, nil
}
