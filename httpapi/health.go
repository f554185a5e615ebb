package httpapi

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/console"
)

// api answers the requests of the HTTP port.
type api struct {
	be          Backend
	metricsAuth bool
	metrics     fasthttp.RequestHandler
	peers       peers // other brokers' HTTP APIs (cluster.go)
}

func newAPI(be Backend) *api {
	return &api{be: be, metricsAuth: be.Host.Config().MetricsAuth,
		metrics: fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(be.Host.Gatherer(), promhttp.HandlerOpts{}))}
}

// serve routes a request: the health endpoints, metrics, the profiler
// when configured, the console, and the API.
func (a *api) serve(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/livez":
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetBodyString("ok\n")
	case "/readyz":
		a.serveReadyz(ctx)
	case "/metrics":
		if !a.metricsAuth || a.allowed(ctx, "GET /metrics", func() acl.Need { return acl.Need{} }) {
			a.metrics(ctx)
		}
	default:
		if a.be.Host.Pprof() && strings.HasPrefix(string(ctx.Path()), "/debug/pprof/") {
			if a.allowed(ctx, "GET /debug/pprof", func() acl.Need { return acl.Need{Admin: true} }) {
				pprofhandler.PprofHandler(ctx)
			}
			return
		}
		if console.Handles(string(ctx.Path())) {
			console.Serve(ctx)
			return
		}
		a.serveAPI(ctx)
	}
}

// serveReadyz answers the readiness probe. Ready means able to serve: a
// broker that refuses sends (drained, disk full) still serves reads, so
// /readyz answers 200 and says why sends are refused; /readyz?send=1
// answers 503 then, for a probe that should route only producers.
func (a *api) serveReadyz(ctx *fasthttp.RequestCtx) {
	ready, text := a.be.Host.Readiness(string(ctx.QueryArgs().Peek("send")) == "1")
	if ready {
		ctx.SetStatusCode(fasthttp.StatusOK)
	} else {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	ctx.SetBodyString(text + "\n")
}
