package admin

import (
	"context"
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
	if a.base != "" {
		self, err := a.adminHTTPSelf(ctx)
		if err != nil {
			return nil, err
		}
		var list []protocol.OpenTransaction
		if err := a.adminHTTP(ctx, "GET", "/v1/transactions", nil, nil, &list); err != nil {
			return nil, err
		}
		add(self.Name, list)
		return out, nil
	}
	bs, err := a.adminMasters(ctx, nil)
	if err != nil {
		return nil, err
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
	for _, b := range bs {
		var list []protocol.OpenTransaction
		if err := a.adminInvokeJSON(ctx, b.Addr, protocol.ReqFerryTxList, nil, nil, &list); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		add(b.Name, list)
	}
	return out, nil
}
