package httpapi

import (
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Stats is the broker's read-only summaries for dashboards (the console
// polls them): its rates over the last 15 minutes, every topic's message
// count and rates, every group's lag with its trend, and the
// delayed-message backlog.
type Stats interface {
	Broker() map[string]any
	Topics() []protocol.HTTPTopicStat
	Groups() []protocol.HTTPGroupStat
	Delayed() (map[string]any, error)
}

func brokerStats(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Stats.Broker())
	return nil
}

func topicStats(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Stats.Topics())
	return nil
}

func groupStats(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Stats.Groups())
	return nil
}

func delayed(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	d, err := a.be.Stats.Delayed()
	return writeResult(ctx, fasthttp.StatusOK, d, err)
}
