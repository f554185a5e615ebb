package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/client/internal/httpapi"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrymq/ferry/protocol"
)

// The HTTP transport: one broker's /v1 API (docs/openapi.yaml). Each
// Admin method that the API can serve has its http* twin here; the rest
// answer client.ErrNotSupported. Results carry the broker's name and remoting
// address (read once from GET /v1/broker), so they look as they do over
// the remoting protocol. Errors come back as problem documents
// ({"title","status","detail","code"}); their code maps to the package's
// not-found and already-exists errors.

// adminHTTPMaxBatch is the most messages or dead letters one request
// carries (the API's limit).
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
func (a *Admin) adminHTTP(ctx context.Context, method, path string, query url.Values, body, out any) error {
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

func (a *Admin) adminHTTPStatus(ctx context.Context) (BrokerStatus, error) {
	var r protocol.BrokerRuntime
	if err := a.adminHTTP(ctx, "GET", "/v1/broker", nil, nil, &r); err != nil {
		return BrokerStatus{}, err
	}
	return brokerStatusOf(&r), nil
}

// adminHTTPSelf is the broker behind the HTTP endpoint, asked once.
func (a *Admin) adminHTTPSelf(ctx context.Context) (adminBroker, error) {
	a.selfMu.Lock()
	defer a.selfMu.Unlock()
	if a.self != nil {
		return *a.self, nil
	}
	s, err := a.adminHTTPStatus(ctx)
	if err != nil {
		return adminBroker{}, err
	}
	a.self = &adminBroker{Cluster: s.Cluster, Name: s.BrokerName, ID: s.BrokerID, Addr: s.Addr}
	return *a.self, nil
}

// adminHTTPSelect checks a broker selection (names or addresses) against
// the one broker the endpoint serves.
func (a *Admin) adminHTTPSelect(ctx context.Context, sel []string) (adminBroker, error) {
	self, err := a.adminHTTPSelf(ctx)
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

// adminNotOverHTTP is the error of an operation the HTTP API cannot serve.
func (a *Admin) adminNotOverHTTP(what string) error {
	return fmt.Errorf("%w: %s over the HTTP API of %s; use the name-server endpoint (--namesrv ip:port)", client.ErrNotSupported, what, a.base)
}

// --- broker ---

func (a *Admin) httpBrokers(ctx context.Context, sample time.Duration) ([]BrokerStatus, error) {
	s, err := a.adminHTTPStatus(ctx)
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
	s2, err := a.adminHTTPStatus(ctx)
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	s2.MsgInPerSec, s2.MsgOutPerSec = (s2.MsgInTotal-s.MsgInTotal)/secs, (s2.MsgOutTotal-s.MsgOutTotal)/secs
	return []BrokerStatus{s2}, nil
}

func (a *Admin) httpBrokerConfigs(ctx context.Context, sel []string) ([]BrokerConfig, error) {
	self, err := a.adminHTTPSelect(ctx, sel)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	if err := a.adminHTTP(ctx, "GET", "/v1/broker/config", nil, nil, &m); err != nil {
		return nil, err
	}
	return []BrokerConfig{{BrokerName: self.Name, Addr: self.Addr, Config: m}}, nil
}

func (a *Admin) httpSetBrokerConfig(ctx context.Context, kv map[string]string, sel []string) error {
	if _, err := a.adminHTTPSelect(ctx, sel); err != nil {
		return err
	}
	return a.adminHTTP(ctx, "PUT", "/v1/broker/config", nil, kv, nil)
}

func (a *Admin) httpDrain(ctx context.Context, on bool, sel []string) error {
	if _, err := a.adminHTTPSelect(ctx, sel); err != nil {
		return err
	}
	path := "/v1/broker/undrain"
	if on {
		path = "/v1/broker/drain"
	}
	return a.adminHTTP(ctx, "POST", path, nil, nil, nil)
}

// --- topics ---

// topicBrokerConfig is a broker's config of a topic from the HTTP API's
// form.
func topicBrokerConfig(t *protocol.HTTPTopic, b adminBroker) TopicBrokerConfig {
	perm, _ := ParsePerm(t.Perm)
	return TopicBrokerConfig{Broker: b.Name, Addr: b.Addr, ReadQueues: t.ReadQueues, WriteQueues: t.WriteQueues,
		Perm: protocol.PermString(perm), Order: t.Order}
}

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

func (a *Admin) httpTopics(ctx context.Context, system bool) ([]TopicInfo, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	var list []protocol.HTTPTopicDetail
	if err := a.adminHTTP(ctx, "GET", "/v1/topics", nil, nil, &list); err != nil {
		return nil, err
	}
	out := make([]TopicInfo, 0, len(list))
	for _, t := range list {
		out = append(out, TopicInfo{Topic: t.Name, Brokers: []TopicBrokerConfig{topicBrokerConfig(&t.HTTPTopic, self)}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return adminFilterTopics(out, system), nil
}

func (a *Admin) httpCreateTopic(ctx context.Context, spec TopicSpec, perm int32) ([]string, error) {
	self, err := a.adminHTTPSelect(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	p, err := adminHTTPPerm(perm)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPTopicInput{Name: spec.Topic, ReadQueues: &spec.ReadQueues, WriteQueues: &spec.WriteQueues, Perm: &p, Order: &spec.Order}
	if spec.DedupWindow > 0 {
		in.DedupWindow = adminHTTPDuration(&spec.DedupWindow)
	}
	if err := a.adminHTTP(ctx, "POST", "/v1/topics", nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *Admin) httpUpdateTopic(ctx context.Context, topic string, u TopicUpdate) ([]string, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPTopicInput{ReadQueues: u.ReadQueues, WriteQueues: u.WriteQueues, Order: u.Order, DedupWindow: adminHTTPDuration(u.DedupWindow)}
	if u.Perm != nil {
		bits, err := ParsePerm(*u.Perm)
		if err != nil {
			return nil, err
		}
		p, err := adminHTTPPerm(bits)
		if err != nil {
			return nil, err
		}
		in.Perm = &p
	}
	if err := a.adminHTTP(ctx, "PUT", "/v1/topics/"+adminPathEscape(topic), nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *Admin) httpDeleteTopic(ctx context.Context, topic string) ([]string, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	// The broker wants a dead-letter topic's deletion confirmed: this call
	// is the confirmation (the CLI asks for --yes).
	path := "/v1/topics/" + adminPathEscape(topic)
	if protocol.IsDLQTopic(topic) {
		path += "?confirm=" + url.QueryEscape(topic)
	}
	if err := a.adminHTTP(ctx, "DELETE", path, nil, nil, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

// httpTopic reads one topic's config and queues.
func (a *Admin) httpTopic(ctx context.Context, topic string) (protocol.HTTPTopicDetail, error) {
	var t protocol.HTTPTopicDetail
	err := a.adminHTTP(ctx, "GET", "/v1/topics/"+adminPathEscape(topic), nil, nil, &t)
	return t, err
}

func (a *Admin) httpDescribeTopic(ctx context.Context, topic string) (*TopicDescription, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	t, err := a.httpTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	d := &TopicDescription{Topic: topic, Brokers: []TopicBrokerConfig{topicBrokerConfig(&t.HTTPTopic, self)}, Queues: []TopicQueue{}}
	for _, q := range t.Queues {
		d.Queues = append(d.Queues, TopicQueue{Broker: self.Name, QueueID: q.QueueID, MinOffset: q.MinOffset, MaxOffset: q.MaxOffset,
			Messages: q.MaxOffset - q.MinOffset, LastStoreMS: q.LastStoreMs})
		d.Messages += q.MaxOffset - q.MinOffset
	}
	return d, nil
}

// --- groups ---

// httpGroupInfo is a group from the HTTP API's form.
func httpGroupInfo(g *protocol.HTTPGroup, b adminBroker) GroupInfo {
	return GroupInfo{GroupConfig: GroupConfig{Group: g.Name, ConsumeEnable: g.ConsumeEnable, BroadcastEnable: g.ConsumeBroadcastEnable,
		RetryMaxTimes: g.RetryMaxTimes}, Brokers: []string{b.Name}, OnlineClients: g.OnlineClients, Broadcasting: g.Broadcast}
}

func (a *Admin) httpGroups(ctx context.Context) ([]GroupInfo, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	var list []protocol.HTTPGroup
	if err := a.adminHTTP(ctx, "GET", "/v1/groups", nil, nil, &list); err != nil {
		return nil, err
	}
	out := make([]GroupInfo, 0, len(list))
	for _, g := range list {
		out = append(out, httpGroupInfo(&g, self))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, nil
}

func (a *Admin) httpGroup(ctx context.Context, group string) (*GroupInfo, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	var g protocol.HTTPGroup
	if err := a.adminHTTP(ctx, "GET", "/v1/groups/"+adminPathEscape(group), nil, nil, &g); err != nil {
		return nil, err
	}
	gi := httpGroupInfo(&g, self)
	return &gi, nil
}

func (a *Admin) httpCreateGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	self, err := a.adminHTTPSelect(ctx, spec.Brokers)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPGroupInput{Name: spec.Group, RetryMaxTimes: spec.RetryMaxTimes, ConsumeEnable: spec.ConsumeEnable, ConsumeBroadcastEnable: spec.Broadcast}
	if err := a.adminHTTP(ctx, "POST", "/v1/groups", nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *Admin) httpUpdateGroup(ctx context.Context, spec GroupSpec) ([]string, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	in := protocol.HTTPGroupInput{RetryMaxTimes: spec.RetryMaxTimes, ConsumeEnable: spec.ConsumeEnable, ConsumeBroadcastEnable: spec.Broadcast}
	if err := a.adminHTTP(ctx, "PUT", "/v1/groups/"+adminPathEscape(spec.Group), nil, in, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

func (a *Admin) httpDeleteGroup(ctx context.Context, group string) ([]string, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.adminHTTP(ctx, "DELETE", "/v1/groups/"+adminPathEscape(group), nil, nil, nil); err != nil {
		return nil, err
	}
	return []string{self.Name}, nil
}

// httpClients lists the group's online consumers. The API does not show
// subscriptions, so Subscriptions stays empty.
func (a *Admin) httpClients(ctx context.Context, group string) (*GroupClients, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	var list []struct {
		ClientID   string    `json:"client_id"`
		Addr       string    `json:"addr"`
		Language   string    `json:"language"`
		Version    int16     `json:"version"`
		LastSeen   time.Time `json:"last_seen"`
		IsConsumer bool      `json:"is_consumer"`
	}
	if err := a.adminHTTP(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/clients", nil, nil, &list); err != nil {
		return nil, err
	}
	out := &GroupClients{Group: group, Clients: []ClientConn{}, Subscriptions: []Subscription{}}
	for _, c := range list {
		if !c.IsConsumer {
			continue
		}
		out.Clients = append(out.Clients, ClientConn{ClientID: c.ClientID, Addr: c.Addr, Language: c.Language, Version: c.Version,
			LastSeen: c.LastSeen, Brokers: []string{self.Name}})
	}
	sort.Slice(out.Clients, func(i, j int) bool { return out.Clients[i].ClientID < out.Clients[j].ClientID })
	return out, nil
}

func (a *Admin) httpLag(ctx context.Context, group string, includeRetry bool) (*GroupLag, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	g, err := a.httpGroup(ctx, group)
	if err != nil {
		return nil, err
	}
	var ans protocol.HTTPLag
	if err := a.adminHTTP(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/lag", nil, nil, &ans); err != nil {
		return nil, err
	}
	out := &GroupLag{Group: group, Queues: []LagRow{}}
	for _, r := range ans.Rows {
		if strings.HasPrefix(r.Topic, "%") && !includeRetry {
			continue
		}
		inflight := int64(r.Inflight)
		row := LagRow{Topic: r.Topic, Broker: self.Name, QueueID: r.QueueID, BrokerOffset: r.BrokerOffset,
			ConsumerOffset: r.ConsumerOffset, Lag: r.Lag, Inflight: &inflight}
		if r.ConsumerOffset > 0 {
			row.LastConsumedMS = a.httpStoreTime(ctx, r.Topic, r.QueueID, r.ConsumerOffset-1)
		}
		out.Queues = append(out.Queues, row)
	}
	if includeRetry {
		dl := protocol.DLQTopic(group)
		t, err := a.httpTopic(ctx, dl)
		switch {
		case err == nil:
			for _, q := range t.Queues {
				out.Queues = append(out.Queues, LagRow{Topic: dl, Broker: self.Name, QueueID: q.QueueID,
					BrokerOffset: q.MaxOffset, ConsumerOffset: q.MinOffset, Lag: q.MaxOffset - q.MinOffset})
			}
		case !errors.Is(err, client.ErrTopicNotFound):
			return nil, err
		}
	}
	if !g.Broadcasting {
		if cl, err := a.httpClients(ctx, group); err == nil {
			ids := make([]string, 0, len(cl.Clients))
			for _, c := range cl.Clients {
				ids = append(ids, c.ClientID)
			}
			adminAssign(out.Queues, ids)
		}
	}
	adminSortLag(out)
	return out, nil
}

// httpStoreTime reads the store time of one message; 0 when it cannot.
func (a *Admin) httpStoreTime(ctx context.Context, topic string, q int32, off int64) int64 {
	ms, _, err := a.httpReadQueue(ctx, topic, q, off, 1, 0)
	if err != nil || len(ms) == 0 || ms[0].QueueOffset != off {
		return 0
	}
	return ms[0].StoreMS
}

// --- offsets ---

func (a *Admin) httpResetOffsets(ctx context.Context, r OffsetReset) (*OffsetResetResult, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	body := protocol.HTTPOffsetReset{Topic: r.Topic, To: r.To, Value: r.Value, Execute: r.Execute}
	var ans protocol.HTTPOffsetResetResult
	if err := a.adminHTTP(ctx, "POST", "/v1/groups/"+adminPathEscape(r.Group)+"/offsets/reset", nil, body, &ans); err != nil {
		return nil, err
	}
	res := &OffsetResetResult{Group: r.Group, Topic: r.Topic, To: r.To, Value: r.Value, Executed: ans.Executed, Offsets: []OffsetChange{}}
	if r.To == ResetEarliest || r.To == ResetLatest {
		res.Value = 0
	}
	for _, o := range ans.Offsets {
		res.Offsets = append(res.Offsets, OffsetChange{Broker: self.Name, QueueID: o.QueueID, Current: o.Old, New: o.New})
	}
	sort.Slice(res.Offsets, func(i, j int) bool { return res.Offsets[i].QueueID < res.Offsets[j].QueueID })
	return res, nil
}

// --- messages ---

// messageView converts the API's message. Properties
// hold the user and the system properties, as the remoting view has them;
// the API does not show the born and store hosts.
func messageView(h *protocol.HTTPMessage, broker string) (MessageView, error) {
	v := MessageView{MsgID: h.MsgID, OffsetMsgID: h.OffsetMsgID, Topic: h.Topic, Broker: broker,
		QueueOffset: h.QueueOffset, CommitlogOffset: h.CommitlogOffset, Tags: h.Tags, Keys: strings.Join(h.Keys, " "),
		BornMS: h.BornAtMs, StoreMS: h.StoredAtMs, ReconsumeTimes: h.ReconsumeTimes, QueueID: h.QueueID,
		Properties: map[string]string{}}
	for k, x := range h.Properties {
		v.Properties[k] = x
	}
	for k, x := range h.SystemProperties {
		v.Properties[k] = x
	}
	var err error
	v.Body, err = h.DecodedBody()
	return v, err
}

func (a *Admin) httpMessage(ctx context.Context, id string) (*MessageView, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	var m protocol.HTTPMessage
	if err := a.adminHTTP(ctx, "GET", "/v1/messages/"+adminPathEscape(id), nil, nil, &m); err != nil {
		return nil, err
	}
	v, err := messageView(&m, self.Name)
	return &v, err
}

func (a *Admin) httpQueryMessages(ctx context.Context, topic, key string, bms, ems int64, max int) ([]MessageView, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"key": {key}, "max": {strconv.Itoa(min(max, adminHTTPMaxBatch))}}
	if bms > 0 {
		q.Set("begin_ms", strconv.FormatInt(bms, 10))
	}
	if ems > 0 {
		q.Set("end_ms", strconv.FormatInt(ems, 10))
	}
	var ans protocol.HTTPMessages
	if err := a.adminHTTP(ctx, "GET", "/v1/topics/"+adminPathEscape(topic)+"/messages", q, nil, &ans); err != nil {
		return nil, err
	}
	out := make([]MessageView, 0, len(ans.Messages))
	for _, m := range ans.Messages {
		v, err := messageView(&m, self.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StoreMS < out[j].StoreMS })
	return out, nil
}

// httpReadQueue reads up to n messages of one queue from off (a stateless
// read); it returns them and the offset to read next.
func (a *Admin) httpReadQueue(ctx context.Context, topic string, q int32, off int64, n int, wait time.Duration) ([]MessageView, int64, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, off, err
	}
	query := url.Values{"offset": {strconv.FormatInt(off, 10)}, "max": {strconv.Itoa(n)}}
	if wait > 0 {
		query.Set("wait_ms", strconv.FormatInt(wait.Milliseconds(), 10))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout+wait)
		defer cancel()
	}
	var ans protocol.HTTPQueueRead
	path := "/v1/topics/" + adminPathEscape(topic) + "/queues/" + strconv.Itoa(int(q)) + "/messages"
	if err := a.adminHTTP(ctx, "GET", path, query, nil, &ans); err != nil {
		return nil, off, err
	}
	out := make([]MessageView, 0, len(ans.Messages))
	for _, m := range ans.Messages {
		v, err := messageView(&m, self.Name)
		if err != nil {
			return nil, off, err
		}
		out = append(out, v)
	}
	return out, ans.NextOffset, nil
}

// httpSend produces msgs in batches, to queue q (-1: one queue the broker
// picks per batch); each message succeeds or fails on its own, and the
// first failure ends the call.
func (a *Admin) httpSend(ctx context.Context, topic string, msgs []OutMessage, q int32) ([]SendReceipt, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SendReceipt, 0, len(msgs))
	for len(msgs) > 0 {
		batch := msgs[:min(len(msgs), adminHTTPMaxBatch)]
		msgs = msgs[len(batch):]
		req := protocol.HTTPProduceRequest{Messages: make([]protocol.HTTPProduceMessage, len(batch))}
		for i, m := range batch {
			pm := protocol.HTTPProduceMessage{Body: string(m.Body), BodyEncoding: "utf8", Tags: m.Tags, Keys: m.Keys, Properties: m.Properties}
			if q >= 0 {
				pm.QueueID = &q
			}
			if !utf8.Valid(m.Body) {
				pm.Body, pm.BodyEncoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
			}
			req.Messages[i] = pm
		}
		var ans protocol.HTTPProduceResponse
		path := "/v1/topics/" + adminPathEscape(topic) + "/messages"
		if err := a.adminHTTP(ctx, "POST", path, nil, req, &ans); err != nil {
			return out, err
		}
		if len(ans.Results) != len(batch) {
			return out, fmt.Errorf("client: POST %s: %d results for %d messages", path, len(ans.Results), len(batch))
		}
		for _, r := range ans.Results {
			if e := r.Error; e != nil {
				return out, adminProblem(a.base, "POST", path, e.Status, e)
			}
			sr := SendReceipt{MsgID: r.MsgID, OffsetMsgID: r.OffsetMsgID, Topic: topic, Broker: self.Name}
			if r.QueueID != nil {
				sr.QueueID = *r.QueueID
			}
			if r.QueueOffset != nil {
				sr.QueueOffset = *r.QueueOffset
			}
			out = append(out, sr)
		}
	}
	return out, nil
}

// --- dead letters ---

func (a *Admin) httpDeadLetters(ctx context.Context, group string, max int) ([]DeadLetter, error) {
	self, err := a.adminHTTPSelf(ctx)
	if err != nil {
		return nil, err
	}
	out := []DeadLetter{}
	from := int64(0)
	for max <= 0 || len(out) < max {
		page := adminHTTPMaxBatch
		if max > 0 {
			page = min(page, max-len(out))
		}
		q := url.Values{"from": {strconv.FormatInt(from, 10)}, "max": {strconv.Itoa(page)}}
		var p protocol.DLQPage
		if err := a.adminHTTP(ctx, "GET", "/v1/groups/"+adminPathEscape(group)+"/dlq", q, nil, &p); err != nil {
			return nil, err
		}
		for i := range p.DeadLetters {
			out = append(out, deadLetterOf(&p.DeadLetters[i], self.Name))
		}
		if len(p.DeadLetters) == 0 || p.Next <= from {
			break
		}
		from = p.Next
	}
	return out, nil
}

// httpResendOffsets resends the dead letters at offsets (all of them when
// offsets is nil) in batches.
func (a *Admin) httpResendDeadLetters(ctx context.Context, r DLQResend, target string, offsets []int64, res *DLQResendResult) error {
	path := "/v1/groups/" + adminPathEscape(r.Group) + "/dlq/resend"
	var ans protocol.DLQResendResult
	if offsets == nil {
		if err := a.adminHTTP(ctx, "POST", path, nil, protocol.HTTPDLQResend{All: true, Target: target}, &ans); err != nil {
			return err
		}
		res.Resent, res.Skipped = ans.Resent, ans.Skipped
		if r.Progress != nil {
			r.Progress(res.Resent, res.Resent)
		}
		return nil
	}
	total := len(offsets)
	for len(offsets) > 0 {
		n := min(len(offsets), adminDLQBatch)
		if err := a.adminHTTP(ctx, "POST", path, nil, protocol.HTTPDLQResend{Offsets: offsets[:n], Target: target}, &ans); err != nil {
			return err
		}
		res.Resent += ans.Resent
		res.Skipped += ans.Skipped
		offsets = offsets[n:]
		if r.Progress != nil {
			r.Progress(res.Resent, total)
		}
	}
	return nil
}

// httpConsume reads the topic's queues with stateless queue reads: from
// each queue's first offset, or the group's committed offset (the end when
// it has none). With Commit it commits the offsets reached (PUT
// /v1/groups/{group}/offsets) when it stops, as the remoting path does.
func (a *Admin) httpConsume(ctx context.Context, spec ConsumeSpec, fn func(MessageView) error) (n int, err error) {
	t, err := a.httpTopic(ctx, spec.Topic)
	if err != nil {
		return 0, err
	}
	committed := map[int32]int64{}
	if !spec.FromBeginning && spec.Group != "" {
		l, err := a.httpLag(ctx, spec.Group, false)
		if err != nil && !errors.Is(err, client.ErrGroupNotFound) {
			return 0, err
		}
		if l != nil {
			for _, r := range l.Queues {
				if r.Topic == spec.Topic {
					committed[r.QueueID] = r.ConsumerOffset
				}
			}
		}
	}
	type cursor struct {
		q   int32
		off int64
	}
	var cs []*cursor
	for _, q := range t.Queues {
		off, ok := committed[q.QueueID]
		switch {
		case spec.FromBeginning:
			off = q.MinOffset
		case !ok:
			off = q.MaxOffset
		}
		cs = append(cs, &cursor{q: q.QueueID, off: off})
	}
	if spec.Commit {
		defer func() {
			if err != nil || spec.Group == "" {
				return
			}
			offs := protocol.HTTPOffsets{Offsets: make([]protocol.HTTPOffset, 0, len(cs))}
			for _, c := range cs {
				offs.Offsets = append(offs.Offsets, protocol.HTTPOffset{Topic: spec.Topic, QueueID: int32(c.q), Offset: c.off})
			}
			// The reads may have used up ctx (--follow until interrupted).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout)
			defer cancel()
			err = a.adminHTTP(cctx, "PUT", "/v1/groups/"+adminPathEscape(spec.Group)+"/offsets", nil, offs, nil)
		}()
	}
	// read reads one queue once; done reports that Max is reached.
	read := func(c *cursor, wait time.Duration) (got int, done bool, err error) {
		ms, next, err := a.httpReadQueue(ctx, spec.Topic, c.q, c.off, 32, wait)
		if err != nil {
			return 0, false, err
		}
		for _, m := range ms {
			if spec.Max > 0 && n >= spec.Max {
				return got, true, nil
			}
			if err := fn(m); err != nil {
				return got, false, err
			}
			n++
			got++
			c.off = m.QueueOffset + 1
		}
		c.off = max(c.off, next)
		return got, spec.Max > 0 && n >= spec.Max, nil
	}
	for _, c := range cs {
		for {
			got, done, err := read(c, 0)
			if err != nil || done {
				return n, err
			}
			if got == 0 {
				break
			}
		}
	}
	for spec.Follow && ctx.Err() == nil {
		for _, c := range cs {
			_, done, err := read(c, time.Second)
			if ctx.Err() != nil {
				return n, nil
			}
			if err != nil || done {
				return n, err
			}
		}
	}
	return n, nil
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
