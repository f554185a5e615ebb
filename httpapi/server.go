// Package httpapi serves Ferry's HTTP port: the health endpoints, metrics,
// the console and the HTTP API (JSON under /v1, described route by route
// in docs/openapi.yaml).
//
// The broker does not import this package: it declares what it hands an
// HTTP server (broker.HTTPViews, small views of itself) and the option that
// starts one (broker.WithHTTP); Mount returns the function that option
// takes. server.Run passes it, so `ferry server` serves HTTP; a broker
// built without it serves no HTTP port.
//
// # Goroutines
//
// Start runs the fasthttp server's accept loop in one goroutine; Shutdown
// stops it and waits for it. fasthttp's worker pool serves the requests.
package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/remoting"
)

// Host is the broker hosting the server: its configuration, its log and
// its listener (TLS when the broker has a certificate).
type Host interface {
	Config() broker.Config
	Logger() zerolog.Logger
	Listen(addr string) (net.Listener, error)
}

// Handler serves the requests the server routes to the broker, and
// answers a request the server could not read.
type Handler interface {
	Serve(ctx *fasthttp.RequestCtx)
	ReadError(ctx *fasthttp.RequestCtx, err error)
}

// Backend is what the server needs of a broker.
type Backend struct {
	Host    Host
	Handler Handler
}

// Mount returns the broker option's mount function: it starts a Server
// over the broker's views.
func Mount() broker.HTTPMount {
	return func(v broker.HTTPViews) (broker.HTTPServer, error) {
		s, err := Start(Backend{Host: v.Host, Handler: v.API})
		if err != nil {
			return nil, err // not a nil *Server in the interface
		}
		return s, nil
	}
}

// Server is a running HTTP server.
type Server struct {
	srv  *fasthttp.Server
	ln   net.Listener
	addr string
	done chan struct{}
}

// Start listens on the host's http_host:http_port and serves until
// Shutdown.
func Start(be Backend) (*Server, error) {
	if be.Host == nil || be.Handler == nil {
		return nil, errors.New("httpapi: a backend needs a host and a handler")
	}
	cfg := be.Host.Config()
	log := be.Host.Logger()
	ln, err := be.Host.Listen(net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.HTTPPort)))
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	// Accept through the remoting package's guard: fasthttp's own accept
	// loop gives up for good on the first error that is not a timeout
	// (EMFILE included), which left the port listening with nobody
	// accepting.
	ln = remoting.GuardListener(ln, remoting.ListenerLimits{MaxConns: cfg.MaxConnections,
		MaxConnsPerAddr: cfg.MaxConnectionsPerAddr, Port: "http", Logger: zslog.New(log), Refuse: refuse})
	s := &Server{ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
	s.srv = &fasthttp.Server{
		Name:               "ferry",
		MaxRequestBodySize: cfg.MaxMessageSize*4 + 1<<20,
		ErrorHandler:       be.Handler.ReadError,
		// Until a request's header and body are in, then between requests.
		ReadTimeout:  cfg.ReadTimeout.D(),
		IdleTimeout:  cfg.IdleTimeout.D(),
		WriteTimeout: remoting.DefaultWriteTimeout,
		// fasthttp's own lines (connection errors) go to the broker's log,
		// without the request's contents, at most a burst every 10 s.
		SecureErrorLogMessage: true,
		Logger:                serverLogger{log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})},
		Handler:               be.Handler.Serve,
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil {
			log.Error().Err(err).Msg("http server stopped")
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.addr }

// Shutdown stops the server: it stops accepting, lets requests in flight
// answer and returns once the accept loop is gone.
func (s *Server) Shutdown() {
	_ = s.srv.Shutdown()
	// fasthttp's Shutdown returns at once if Serve has not registered the
	// listener yet; closing it ends that Serve too.
	_ = s.ln.Close()
	<-s.done
}

// refuse answers a connection over a limit with a 503 before it is
// closed.
func refuse(c net.Conn, why string) {
	body := "connection refused: " + why + "\n"
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"Connection: close\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
}

// serverLogger writes fasthttp's messages as structured warnings.
type serverLogger struct{ log zerolog.Logger }

// maxServerLine bounds a fasthttp message kept in the log.
const maxServerLine = 512

func (l serverLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxServerLine {
		msg = msg[:maxServerLine] + "…"
	}
	l.log.Warn().Str("port", "http").Str("error", msg).Msg("http: connection error")
}
