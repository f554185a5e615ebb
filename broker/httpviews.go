package broker

import (
	"net"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// The HTTP port is served by package httpapi, which this package does not
// import: a broker built with WithHTTP hands the mount function its
// HTTPViews at Start and shuts the server it returns down at Shutdown.

// HTTPServer is a running HTTP server.
type HTTPServer interface {
	// Addr is the bound address.
	Addr() string
	// Shutdown stops the server and returns once its goroutines are gone.
	Shutdown()
}

// HTTPMount starts an HTTP server over a broker's views.
type HTTPMount func(HTTPViews) (HTTPServer, error)

// WithHTTP serves the HTTP port (http_host, http_port; none when
// http_port is -1) with the server mount starts. Without it the broker
// serves no HTTP port.
func WithHTTP(mount HTTPMount) Option { return func(b *Broker) { b.httpMount = mount } }

// HTTPViews is the broker as an HTTP server sees it.
type HTTPViews struct {
	Host HTTPHostView
	API  HTTPHandlerView
}

func (b *Broker) httpViews() HTTPViews {
	return HTTPViews{Host: HTTPHostView{b}, API: HTTPHandlerView{b.httpHandler()}}
}

// HTTPHostView is the broker hosting an HTTP server.
type HTTPHostView struct{ b *Broker }

// Config is the configuration in force.
func (v HTTPHostView) Config() Config { return *v.b.c() }

// Logger is the broker's logger.
func (v HTTPHostView) Logger() zerolog.Logger { return v.b.log }

// Listen listens on addr, with the broker's TLS configuration if it has
// one.
func (v HTTPHostView) Listen(addr string) (net.Listener, error) { return v.b.listen(addr) }

// HTTPHandlerView answers the requests of the HTTP port (http.go).
type HTTPHandlerView struct{ h fasthttp.RequestHandler }

// Serve answers a request.
func (v HTTPHandlerView) Serve(ctx *fasthttp.RequestCtx) { v.h(ctx) }

// ReadError answers a request the server could not read: an oversized
// body is 413, anything else 400.
func (v HTTPHandlerView) ReadError(ctx *fasthttp.RequestCtx, err error) { apiReadError(ctx, err) }
