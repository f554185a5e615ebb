package broker

import (
	"github.com/valyala/fasthttp"
)

// serveAPI serves the versioned HTTP API under /v1.
func (b *Broker) serveAPI(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/v1/broker":
		writeJSON(ctx, fasthttp.StatusOK, b.Runtime())
	default:
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]any{"type": "about:blank", "title": "not found", "status": 404, "detail": "no such resource: " + string(ctx.Path())})
	}
}
