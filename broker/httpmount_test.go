package broker

import (
	"net"
	"strconv"

	"github.com/valyala/fasthttp"
)

// testHTTPServer serves the broker's HTTP handler on a bare fasthttp
// server for this package's tests, which exercise the handler; the
// server itself (connection limits, timeouts, TLS, its log) is package
// httpapi's, which imports this one, and is tested there.
type testHTTPServer struct {
	srv  *fasthttp.Server
	ln   net.Listener
	done chan struct{}
}

func testHTTPMount(v HTTPViews) (HTTPServer, error) {
	cfg := v.Host.Config()
	ln, err := v.Host.Listen(net.JoinHostPort(cfg.HTTPHost, strconv.Itoa(cfg.HTTPPort)))
	if err != nil {
		return nil, err
	}
	s := &testHTTPServer{ln: ln, done: make(chan struct{}), srv: &fasthttp.Server{
		Handler: v.API.Serve, ErrorHandler: v.API.ReadError, MaxRequestBodySize: cfg.MaxMessageSize*4 + 1<<20}}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

func (s *testHTTPServer) Addr() string { return s.ln.Addr().String() }

func (s *testHTTPServer) Shutdown() {
	_ = s.srv.Shutdown()
	_ = s.ln.Close()
	<-s.done
}
