package broker

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/ferrymq/ferry/acl"
)

// httpServer serves the health endpoints, metrics and the HTTP API.
type httpServer struct {
	srv  *fasthttp.Server
	ln   net.Listener
	addr string
	done chan struct{}
}

func (b *Broker) startHTTP() (*httpServer, error) {
	ln, err := b.listen(net.JoinHostPort(b.cfg.HTTPHost, strconv.Itoa(b.cfg.HTTPPort)))
	if err != nil {
		return nil, fmt.Errorf("broker: http listen: %w", err)
	}
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	h := &httpServer{ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
	h.srv = &fasthttp.Server{
		Name:               "ferry",
		MaxRequestBodySize: b.cfg.MaxMessageSize*4 + 1<<20,
		ErrorHandler:       apiReadError,
		Logger:             httpLog{b.log},
		Handler: func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/livez":
				ctx.SetStatusCode(fasthttp.StatusOK)
				ctx.SetBodyString("ok\n")
			case "/readyz":
				if !b.ready.Load() {
					ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
					ctx.SetBodyString("not ready: starting or shutting down\n")
					return
				}
				if why := b.writable(); why != "" {
					ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
					ctx.SetBodyString("not ready: " + why + "\n")
					return
				}
				ctx.SetStatusCode(fasthttp.StatusOK)
				ctx.SetBodyString("ok\n")
			case "/metrics":
				if !b.cfg.MetricsAuth || b.httpAllowed(ctx, "GET /metrics", func() acl.Need { return acl.Need{} }) {
					metricsHandler(ctx)
				}
			default:
				if b.cfg.Pprof && strings.HasPrefix(string(ctx.Path()), "/debug/pprof/") {
					if b.httpAllowed(ctx, "GET /debug/pprof", func() acl.Need { return acl.Need{Admin: true} }) {
						pprofhandler.PprofHandler(ctx)
					}
					return
				}
				b.serveAPI(ctx)
			}
		},
	}
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(ln); err != nil {
			b.log.Error().Err(err).Msg("http server stopped")
		}
	}()
	return h, nil
}

func (h *httpServer) shutdown() {
	_ = h.srv.Shutdown()
	<-h.done
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}
