package httpapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Admin is the broker's run-time administration: /v1/broker,
// /v1/producers and /v1/transactions.
type Admin interface {
	Runtime() broker.RuntimeInfo
	ConfigMap() map[string]string
	SetConfig(key, value string) error
	Drain(on bool)
	Producers() []protocol.ProducerState
	Transactions() ([]protocol.OpenTransaction, error)
}

func brokerRuntime(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Admin.Runtime())
	return nil
}

func getConfig(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Admin.ConfigMap())
	return nil
}

// setConfig applies {"key": value, ...}; values may be JSON strings or
// bare numbers and booleans. Keys apply in sorted order and the first
// refused one stops the request (the ones before it stay applied).
func setConfig(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	var kv map[string]json.RawMessage
	if err := httpjson.DecodeBody(ctx, &kv); err != nil {
		return err
	}
	if len(kv) == 0 {
		return fmt.Errorf("%w: no keys to set", protocol.ErrHTTPBadInput)
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		raw := kv[k]
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			s = string(raw) // a number or a boolean, as written
		}
		if err := a.be.Admin.SetConfig(k, s); err != nil {
			if i > 0 {
				err = fmt.Errorf("%w (applied before it: %s)", err, strings.Join(keys[:i], ", "))
			}
			return err
		}
	}
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Admin.ConfigMap())
	return nil
}

func drain(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	a.be.Admin.Drain(true)
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, map[string]bool{"drained": true})
	return nil
}

func undrain(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	a.be.Admin.Drain(false)
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, map[string]bool{"drained": false})
	return nil
}

// producers lists the idempotent producers.
func producers(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Admin.Producers())
	return nil
}

// transactions lists the open transactions, oldest first.
func transactions(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	list, err := a.be.Admin.Transactions()
	return writeResult(ctx, fasthttp.StatusOK, list, err)
}
