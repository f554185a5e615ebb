package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/client/internal/httpapi"
	"github.com/ferrymq/ferry/protocol"
)

// The HTTP transport: one broker's /v1 API (docs/openapi.yaml). Each
// Admin method that the API can serve has an http* twin; the rest
// answer client.ErrNotSupported. Results carry the broker's name and remoting
// address (read once from GET /v1/broker), so they look as they do over
// the remoting protocol. Errors come back as problem documents
// ({"title","status","detail","code"}); their code maps to the package's
// not-found and already-exists errors.
//
// This file holds the request plumbing and the broker calls; the topic,
// group and offset, and message and dead-letter calls are in
// admin_http_topic.go, admin_http_group.go and admin_http_message.go.

// adminHTTPMaxBatch is the most messages or dead letters one request
// carries (the API's limit).
// httpAdmin is what an Admin does over one broker's HTTP API (an
// http:// or https:// endpoint) instead of the remoting protocol.
type httpAdmin struct {
	base    string // the broker API's base URL, no trailing slash
	hc      *http.Client
	timeout time.Duration

	selfMu sync.Mutex
	self   *adminBroker // the broker behind base, once asked
}

const adminHTTPMaxBatch = 1000

// adminProblem is the error an HTTP problem answer stands for: a
// *client.ServerError with the request and the problem's detail.
func adminProblem(base, method, path string, status int, p *protocol.Problem) error {
	se := &client.ServerError{Broker: base, Code: p.Code, Remark: strings.TrimPrefix(p.Detail, "broker: "),
		Method: method, Path: path, Status: status, Type: p.Type}
	if se.Remark == "" {
		se.Remark = p.Title
	}
	if se.Remark == "" {
		se.Remark = http.StatusText(status)
	}
	switch se.Class() {
	case protocol.ClassTopicNotFound, protocol.ClassTopicExists, protocol.ClassMessageNotFound,
		protocol.ClassGroupNotFound, protocol.ClassGroupExists:
		return &adminProblemErr{sentinel: adminClassErr[se.Class()], title: p.Title, se: se}
	}
	return se
}

// adminProblemErr is a not-found or already-exists problem: it reads
// "client: no such topic: orders (HTTP 404 from GET /v1/topics/orders)".
type adminProblemErr struct {
	sentinel error
	title    string
	se       *client.ServerError
}

func (e *adminProblemErr) Error() string {
	return fmt.Sprintf("%v: %s (HTTP %d from %s %s)", e.sentinel, e.subject(), e.se.Status, e.se.Method, e.se.Path)
}

func (e *adminProblemErr) Unwrap() error { return e.se }

// subject is what the problem is about when the broker's detail names it
// after its title ("broker: topic does not exist: orders" → "orders").
func (e *adminProblemErr) subject() string {
	s := e.se.Remark
	if rest, ok := strings.CutPrefix(s, e.title+": "); ok {
		if u, err := strconv.Unquote(rest); err == nil {
			return u
		}
		return rest
	}
	return s
}

func adminPathEscape(s string) string { return url.PathEscape(s) }

// adminHTTP does one request: body (if not nil) is sent as JSON and the
// answer decoded into out (if not nil). An error answer whose code is a
// not-found or already-exists one wraps the matching package error.
func (a *httpAdmin) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	ans, err := httpapi.Do(ctx, a.hc, a.base, method, path, query, body)
	if err != nil {
		return fmt.Errorf("client: broker HTTP API at %s: %w", a.base, err)
	}
	if ans.Status >= 300 {
		var p protocol.Problem
		if err := json.Unmarshal(ans.Data, &p); err != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(ans.Data))
		}
		return adminProblem(a.base, method, path, ans.Status, &p)
	}
	return ans.Decode(method, path, out)
}

func (a *httpAdmin) status(ctx context.Context) (BrokerStatus, error) {
	var r protocol.BrokerRuntime
	if err := a.do(ctx, "GET", "/v1/broker", nil, nil, &r); err != nil {
		return BrokerStatus{}, err
	}
	return brokerStatusOf(&r), nil
}

// adminHTTPSelf is the broker behind the HTTP endpoint, asked once.
func (a *httpAdmin) selfBroker(ctx context.Context) (adminBroker, error) {
	a.selfMu.Lock()
	defer a.selfMu.Unlock()
	if a.self != nil {
		return *a.self, nil
	}
	s, err := a.status(ctx)
	if err != nil {
		return adminBroker{}, err
	}
	a.self = &adminBroker{Cluster: s.Cluster, Name: s.BrokerName, ID: s.BrokerID, Addr: s.Addr}
	return *a.self, nil
}

// adminHTTPSelect checks a broker selection (names or addresses) against
// the one broker the endpoint serves.
func (a *httpAdmin) selectBroker(ctx context.Context, sel []string) (adminBroker, error) {
	self, err := a.selfBroker(ctx)
	if err != nil {
		return self, err
	}
	for _, s := range sel {
		if s != self.Name && s != self.Addr {
			return self, fmt.Errorf("%w: %s (the HTTP endpoint %s serves broker %s only)", ErrNoBroker, s, a.base, self.Name)
		}
	}
	return self, nil
}

// notSupported is the error of an operation the HTTP API cannot serve.
func (a *httpAdmin) notSupported(what string) error {
	return fmt.Errorf("%w: %s over the HTTP API of %s; use the name-server endpoint (--namesrv ip:port)", client.ErrNotSupported, what, a.base)
}

// --- broker ---

func (a *httpAdmin) brokers(ctx context.Context, sample time.Duration) ([]BrokerStatus, error) {
	s, err := a.status(ctx)
	if err != nil {
		return nil, err
	}
	if sample <= 0 {
		if s.UptimeSeconds > 0 {
			s.MsgInPerSec, s.MsgOutPerSec = s.MsgInTotal/s.UptimeSeconds, s.MsgOutTotal/s.UptimeSeconds
		}
		return []BrokerStatus{s}, nil
	}
	t0 := time.Now()
	select {
	case <-time.After(sample):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s2, err := a.status(ctx)
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	s2.MsgInPerSec, s2.MsgOutPerSec = (s2.MsgInTotal-s.MsgInTotal)/secs, (s2.MsgOutTotal-s.MsgOutTotal)/secs
	return []BrokerStatus{s2}, nil
}

func (a *httpAdmin) brokerConfigs(ctx context.Context, sel []string) ([]BrokerConfig, error) {
	self, err := a.selectBroker(ctx, sel)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if err := a.do(ctx, "GET", "/v1/broker/config", nil, nil, &m); err != nil {
		return nil, err
	}
	return []BrokerConfig{{BrokerName: self.Name, Addr: self.Addr, Config: m}}, nil
}

func (a *httpAdmin) setBrokerConfig(ctx context.Context, kv map[string]string, sel []string) error {
	if _, err := a.selectBroker(ctx, sel); err != nil {
		return err
	}
	return a.do(ctx, "PUT", "/v1/broker/config", nil, kv, nil)
}

func (a *httpAdmin) drain(ctx context.Context, on bool, sel []string) error {
	if _, err := a.selectBroker(ctx, sel); err != nil {
		return err
	}
	path := "/v1/broker/undrain"
	if on {
		path = "/v1/broker/drain"
	}
	return a.do(ctx, "POST", path, nil, nil, nil)
}

// --- topics ---

func adminHTTPDuration(d *time.Duration) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

// adminHTTPPerm turns permission bits into the API's "rw", "r" or "w".
func adminHTTPPerm(p int32) (string, error) {
	s := protocol.HTTPPermText(p)
	if s == "-" {
		return "", fmt.Errorf("client: a topic must be readable or writable (R, W or RW)")
	}
	return s, nil
}

// adminClassErr is the client's sentinel of each class a problem names
// the subject of.
var adminClassErr = map[protocol.Class]error{
	protocol.ClassTopicNotFound:   client.ErrTopicNotFound,
	protocol.ClassTopicExists:     client.ErrTopicExists,
	protocol.ClassMessageNotFound: client.ErrMessageNotFound,
	protocol.ClassGroupNotFound:   client.ErrGroupNotFound,
	protocol.ClassGroupExists:     client.ErrGroupExists,
}
