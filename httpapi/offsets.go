package httpapi

import (
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Offsets is the broker's committed consumer offsets:
// /v1/groups/{group}/offsets.
type Offsets interface {
	// Get is a group's committed offsets, of topic only unless only is "".
	Get(group, only string) (protocol.HTTPOffsets, error)
	// Commit commits offsets for a group, as a consumer does.
	Commit(group string, in protocol.HTTPOffsets) error
}

// getOffsets answers a group's committed offsets, of one topic with
// ?topic=T. A group that never committed has none (not an error).
func getOffsets(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	out, err := a.be.Offsets.Get(p.Get("group"), string(ctx.QueryArgs().Peek("topic")))
	return writeResult(ctx, fasthttp.StatusOK, out, err)
}

// commitOffsets commits offsets for a group, as a consumer does with
// UPDATE_CONSUMER_OFFSET: {"offsets":[{"topic","queue_id","offset"}]}.
func commitOffsets(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in protocol.HTTPOffsets
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	if err := a.be.Offsets.Commit(p.Get("group"), in); err != nil {
		return err
	}
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, map[string]any{"committed": len(in.Offsets)})
	return nil
}
