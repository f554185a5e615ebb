package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/console"
	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/remoting"
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
	// Accept through the remoting package's guard: fasthttp's own accept
	// loop gives up for good on the first error that is not a timeout
	// (EMFILE included), which left the port listening with nobody
	// accepting.
	ln = remoting.GuardListener(ln, remoting.ListenerLimits{MaxConns: b.cfg.MaxConnections,
		MaxConnsPerAddr: b.cfg.MaxConnectionsPerAddr, Port: "http", Logger: zslog.New(b.log), Refuse: refuseHTTP})
	metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(b.metrics.reg, promhttp.HandlerOpts{}))
	h := &httpServer{ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
	h.srv = &fasthttp.Server{
		Name:               "ferry",
		MaxRequestBodySize: b.cfg.MaxMessageSize*4 + 1<<20,
		ErrorHandler:       apiReadError,
		// Until a request's header and body are in, then between requests.
		ReadTimeout:  b.cfg.ReadTimeout.D(),
		IdleTimeout:  b.cfg.IdleTimeout.D(),
		WriteTimeout: remoting.DefaultWriteTimeout,
		// fasthttp's own lines (connection errors) go to the broker's log,
		// without the request's contents, at most a burst every 10 s.
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{b.log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})},
		Handler: func(ctx *fasthttp.RequestCtx) {
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

// refuseHTTP answers a connection over a limit with a 503 before it is
// closed.
func refuseHTTP(c net.Conn, why string) {
	body := "connection refused: " + why + "\n"
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Connection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// fasthttpLogger writes fasthttp's messages as structured warnings.
type fasthttpLogger struct{ log zerolog.Logger }

// maxFasthttpLine bounds a fasthttp message kept in the log.
const maxFasthttpLine = 512

func (l fasthttpLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxFasthttpLine {
		msg = msg[:maxFasthttpLine] + "…"
	}
	l.log.Warn().Str("port", "http").Str("error", msg).Msg("http: connection error")
}

func (h *httpServer) shutdown() {
	_ = h.srv.Shutdown()
	// fasthttp's Shutdown returns at once if Serve has not registered the
	// listener yet; closing it ends that Serve too.
	_ = h.ln.Close()
	<-h.done
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}
