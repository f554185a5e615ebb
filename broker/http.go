package broker

import (
	"encoding/json"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/console"
)

// httpHandler answers the requests of the HTTP port: the health
// endpoints, metrics, the profiler when configured, the console and the
// API. The server that runs it is package httpapi's (httpviews.go).
func (b *Broker) httpHandler() fasthttp.RequestHandler {
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	return func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/livez":
			ctx.SetStatusCode(fasthttp.StatusOK)
			ctx.SetBodyString("ok\n")
		case "/readyz":
			b.serveReadyz(ctx)
		case "/metrics":
			if !b.cfg.MetricsAuth || b.httpAllowed(ctx, "GET /metrics", func() acl.Need { return acl.Need{} }) {
				metricsHandler(ctx)
			}
		default:
			if b.c().Pprof && strings.HasPrefix(string(ctx.Path()), "/debug/pprof/") {
				if b.httpAllowed(ctx, "GET /debug/pprof", func() acl.Need { return acl.Need{Admin: true} }) {
					pprofhandler.PprofHandler(ctx)
				}
				return
			}
			if console.Handles(string(ctx.Path())) {
				console.Serve(ctx)
				return
			}
			b.serveAPI(ctx)
		}
	}
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}
