package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/client/internal/httpapi"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Admin is the operator's client: cluster and broker status, topics,
// groups, lag, offsets, messages and dead letters. It speaks the remoting
// protocol to the name servers and fans out to every broker they list, or
// the HTTP API of one broker when the endpoint is an http:// URL.
//
// Every method takes a context; its deadline bounds the whole operation,
// and each request is further bounded by the per-request timeout
// (WithRequestTimeout). Results are plain structs with snake_case JSON
// tags, stable for scripts.
type Admin struct {
	r       *remotingAdmin // the name servers and their brokers (nil over HTTP)
	h       *httpAdmin     // one broker's HTTP API (nil over remoting)
	timeout time.Duration  // each request's
}

// remotingAdmin is what an Admin does over the remoting protocol: it asks
// the name servers for the brokers and fans out to them.
type remotingAdmin struct {
	namesrvs []string // name server addresses, tried in order
	rc       *remoting.Client
	timeout  time.Duration
}

// Remoting is the admin's connection pool (with its credentials and TLS),
// for requests the Admin has no method of its own for; nil for an admin
// of a broker's HTTP API. The Admin owns it: Close closes it.
func (a *Admin) Remoting() *remoting.Client {
	if a.r == nil {
		return nil
	}
	return a.r.rc
}

// Option configures an Admin.
type Option func(*options)

type options struct {
	requestTimeout time.Duration
	dialTimeout    time.Duration
	httpClient     *http.Client
	creds          remoting.Credentials
	signEach       bool
	tls            *tls.Config
}

// WithCredentials signs every request with an access key and its
// secret key (HTTP: Basic authentication), for brokers with an ACL file.
func WithCredentials(accessKey, secretKey string) Option {
	return func(o *options) { o.creds = remoting.Credentials{AccessKey: accessKey, SecretKey: secretKey} }
}

// WithTLS connects with TLS.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithRequestSigning signs every request instead of authenticating the
// connection once, as client.WithRequestSigning.
func WithRequestSigning() Option { return func(o *options) { o.signEach = true } }

// WithRequestTimeout bounds each request (default 10 s).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.requestTimeout = d }
}

// WithDialTimeout bounds each connection attempt (default 3 s).
func WithDialTimeout(d time.Duration) Option {
	return func(o *options) { o.dialTimeout = d }
}

// WithHTTPClient sets the HTTP client used with an http:// endpoint.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}

// Admin errors. Test with errors.Is.
var (
	// ErrNoNamesrv: no name server answered.
	ErrNoNamesrv = errors.New("client: no name server reachable")
	// ErrNoBroker: the name servers know no broker (or not the one asked for).
	ErrNoBroker = errors.New("client: no such broker")
)

// New returns an Admin for endpoint: "ip:port[;ip:port...]" (name
// servers, remoting protocol; commas work too) or "http://host:port" (one
// broker's HTTP API). It does not connect until the first call.
func New(endpoint string, opts ...Option) (*Admin, error) {
	o := options{requestTimeout: 10 * time.Second, dialTimeout: 3 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if o.requestTimeout <= 0 || o.dialTimeout <= 0 {
		return nil, errors.New("client: admin timeouts must be positive")
	}
	endpoint = strings.TrimSpace(endpoint)
	if endpoint == "" {
		return nil, errors.New("client: admin endpoint is empty (name servers ip:port;ip:port or http://host:port)")
	}
	a := &Admin{timeout: o.requestTimeout}
	if strings.HasPrefix(endpoint, "http://") || strings.HasPrefix(endpoint, "https://") {
		hc := o.httpClient
		if hc == nil {
			hc = &http.Client{Timeout: o.requestTimeout}
			if o.tls != nil {
				tr := http.DefaultTransport.(*http.Transport).Clone()
				tr.TLSClientConfig = o.tls
				hc.Transport = tr
			}
		}
		a.h = &httpAdmin{base: strings.TrimRight(endpoint, "/"), hc: httpapi.WithBasicAuth(hc, o.creds), timeout: o.requestTimeout}
		return a, nil
	}
	var namesrvs []string
	for _, s := range strings.FieldsFunc(endpoint, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }) {
		if !strings.Contains(s, ":") {
			return nil, fmt.Errorf("client: name server %q: want ip:port", s)
		}
		namesrvs = append(namesrvs, s)
	}
	a.r = &remotingAdmin{namesrvs: namesrvs, timeout: o.requestTimeout,
		rc: remoting.NewClient(remoting.ClientConfig{DialTimeout: o.dialTimeout, Credentials: o.creds, Authenticate: !o.signEach, TLS: o.tls})}
	return a, nil
}

// Close closes the connections.
func (a *Admin) Close() error {
	if a.r != nil {
		return a.r.rc.Close()
	}
	return nil
}

// adminBroker is one broker process as the name servers list it.
type adminBroker struct {
	Cluster string
	Name    string
	ID      int64
	Addr    string
}

// adminInvoke sends one request to addr and checks the answer's code.
func (a *remotingAdmin) invoke(ctx context.Context, addr string, code int16, ext map[string]string, body []byte) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := a.rc.Invoke(ctx, addr, remoting.NewRequest(code, ext, body))
	if err != nil {
		return nil, err
	}
	if resp.Code != protocol.RespSuccess {
		return resp, brokerErr(addr, resp)
	}
	return resp, nil
}

// adminInvokeJSON is adminInvoke decoding the answer's body into out.
func (a *remotingAdmin) invokeJSON(ctx context.Context, addr string, code int16, ext map[string]string, body []byte, out any) error {
	resp, err := a.invoke(ctx, addr, code, ext, body)
	if err != nil {
		return err
	}
	return remoting.DecodeBody(resp.Body, out)
}

// adminNamesrv sends a request to the first name server that answers.
func (a *remotingAdmin) namesrv(ctx context.Context, code int16, ext map[string]string) (*remoting.Command, error) {
	if len(a.namesrvs) == 0 {
		return nil, client.ErrNotSupported
	}
	var errs []error
	for _, ns := range a.namesrvs {
		resp, err := a.invoke(ctx, ns, code, ext, nil)
		var se *client.ServerError
		if err == nil || errors.As(err, &se) {
			return resp, err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w at %s: %w", ErrNoNamesrv, strings.Join(a.namesrvs, ", "), errs[len(errs)-1])
}

// adminBrokers lists every broker of every cluster, sorted by cluster,
// name and id.
func (a *remotingAdmin) brokers(ctx context.Context) ([]adminBroker, error) {
	resp, err := a.namesrv(ctx, protocol.ReqGetBrokerClusterInfo, nil)
	if err != nil {
		return nil, err
	}
	var ci remoting.ClusterInfo
	if err := remoting.DecodeBody(resp.Body, &ci); err != nil {
		return nil, err
	}
	var out []adminBroker
	for name, bd := range ci.BrokerAddrTable {
		for id, addr := range bd.BrokerAddrs {
			out = append(out, adminBroker{Cluster: bd.Cluster, Name: name, ID: id, Addr: addr})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if x.Cluster != y.Cluster {
			return x.Cluster < y.Cluster
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.ID < y.ID
	})
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the name servers list no broker", ErrNoBroker)
	}
	return out, nil
}

// adminMasters lists the masters (broker id 0), filtered by sel: broker
// names or addresses; empty selects all.
func (a *remotingAdmin) masters(ctx context.Context, sel []string) ([]adminBroker, error) {
	all, err := a.brokers(ctx)
	if err != nil {
		return nil, err
	}
	var out []adminBroker
	for _, b := range all {
		if b.ID == 0 && (len(sel) == 0 || adminContains(sel, b.Name) || adminContains(sel, b.Addr)) {
			out = append(out, b)
		}
	}
	for _, s := range sel {
		found := false
		for _, b := range out {
			found = found || b.Name == s || b.Addr == s
		}
		if !found {
			return nil, fmt.Errorf("%w: %s", ErrNoBroker, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no master broker", ErrNoBroker)
	}
	return out, nil
}

func adminContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// adminIsCode reports whether err is a broker answer with one of codes.
func adminIsCode(err error, codes ...int16) bool {
	var se *client.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.Code == int(c) {
			return true
		}
	}
	return false
}

// IsSystemTopic reports the broker's internal topics (protocol.IsReservedTopic):
// retry and dead-letter topics, the auto-create template, the schedule and
// timer topics and RocketMQ's RMQ_SYS_ topics.
func IsSystemTopic(t string) bool { return protocol.IsReservedTopic(t) }

// brokerErr is the error of an answer that is not SUCCESS.
func brokerErr(addr string, resp *remoting.Command) error {
	return &client.ServerError{Broker: addr, Code: int(resp.Code), Remark: resp.Remark}
}
