package httpapi

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/internal/zslog"
	"github.com/ferrymq/ferry/remoting"
)

// Server is a running HTTP server.
type Server struct {
	api  *api
	srv  *fasthttp.Server
	ln   net.Listener
	addr string
	done chan struct{}
}

// Start listens on the host's http_host:http_port and serves until
// Shutdown.
func Start(be Backend) (*Server, error) {
	if err := be.complete(); err != nil {
		return nil, err
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
	s := &Server{api: newAPI(be), ln: ln, addr: ln.Addr().String(), done: make(chan struct{})}
	s.srv = &fasthttp.Server{
		Name:               "ferry",
		MaxRequestBodySize: cfg.MaxMessageSize*4 + 1<<20,
		ErrorHandler:       readError,
		// Until a request's header and body are in, then between requests.
		ReadTimeout:  cfg.ReadTimeout.D(),
		IdleTimeout:  cfg.IdleTimeout.D(),
		WriteTimeout: remoting.DefaultWriteTimeout,
		// fasthttp's own lines (connection errors) go to the broker's log,
		// without the request's contents, at most a burst every 10 s.
		SecureErrorLogMessage: true,
		Logger:                serverLogger{log.Sample(&zerolog.BurstSampler{Burst: 10, Period: 10 * time.Second})},
		Handler:               s.api.serve,
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
	s.api.closePeers()
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
