package httpapi

import (
	"fmt"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// handler serves one route; p holds the path parameters. An error is
// answered as its problem (problem.go).
type handler func(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error

// route is one route of the API. need says what an account needs to call
// it when the broker has an ACL (acl.go).
type route struct {
	method string
	path   string // OpenAPI form, e.g. /v1/topics/{topic}
	segs   []string
	need   needFunc
	handle handler
}

func (r *route) key() string { return r.method + " " + r.path }

// routes is the route table: the one list the router serves and the
// OpenAPI test checks docs/openapi.yaml against.
var routes = buildRoutes([]route{
	{method: "GET", path: "/v1/broker", need: needAdmin, handle: brokerRuntime},
	{method: "GET", path: "/v1/producers", need: needAdmin, handle: producers},
	{method: "GET", path: "/v1/broker/config", need: needAdmin, handle: getConfig},
	{method: "PUT", path: "/v1/broker/config", need: needAdmin, handle: setConfig},
	{method: "POST", path: "/v1/broker/drain", need: needAdmin, handle: drain},
	{method: "POST", path: "/v1/broker/undrain", need: needAdmin, handle: undrain},

	{method: "GET", path: "/v1/topics", need: needAdmin, handle: listTopics},
	{method: "POST", path: "/v1/topics", need: needAdmin, handle: createTopic},
	{method: "GET", path: "/v1/topics/{topic}", need: needTopic(acl.Any), handle: getTopic},
	{method: "PUT", path: "/v1/topics/{topic}", need: needAdmin, handle: updateTopic},
	{method: "DELETE", path: "/v1/topics/{topic}", need: needAdmin, handle: deleteTopic},
	{method: "POST", path: "/v1/topics/{topic}/messages", need: needTopic(acl.Pub), handle: produce},
	{method: "GET", path: "/v1/topics/{topic}/messages", need: needTopic(acl.Sub), handle: findMessages},
	{method: "GET", path: "/v1/topics/{topic}/queues/{queue}/messages", need: needTopic(acl.Sub), handle: readQueue},
	{method: "GET", path: "/v1/messages/{msgId}", need: needAdmin, handle: messageByID},

	{method: "GET", path: "/v1/groups", need: needAdmin, handle: listGroups},
	{method: "POST", path: "/v1/groups", need: needAdmin, handle: createGroup},
	{method: "GET", path: "/v1/groups/{group}", need: needGroup(acl.Sub), handle: getGroup},
	{method: "PUT", path: "/v1/groups/{group}", need: needAdmin, handle: updateGroup},
	{method: "DELETE", path: "/v1/groups/{group}", need: needAdmin, handle: deleteGroup},
	{method: "GET", path: "/v1/groups/{group}/lag", need: needGroup(acl.Sub), handle: groupLag},
	{method: "GET", path: "/v1/groups/{group}/clients", need: needGroup(acl.Sub), handle: groupClients},
	{method: "GET", path: "/v1/groups/{group}/offsets", need: needGroup(acl.Sub), handle: getOffsets},
	{method: "PUT", path: "/v1/groups/{group}/offsets", need: needGroup(acl.Sub), handle: commitOffsets},
	{method: "POST", path: "/v1/groups/{group}/offsets/reset", need: needAdmin, handle: resetOffsets},
	{method: "POST", path: "/v1/groups/{group}/receive", need: needReceive, handle: receive},
	{method: "POST", path: "/v1/groups/{group}/ack", need: needGroup(acl.Sub), handle: ack},
	{method: "POST", path: "/v1/groups/{group}/nack", need: needGroup(acl.Sub), handle: nack},
	{method: "GET", path: "/v1/groups/{group}/dlq", need: needGroup(acl.Sub), handle: deadLetters},
	{method: "POST", path: "/v1/groups/{group}/dlq/resend", need: needAdmin, handle: resendDeadLetters},

	{method: "GET", path: "/v1/broker/stats", need: needAdmin, handle: brokerStats},
	{method: "GET", path: "/v1/stats/topics", need: needAdmin, handle: topicStats},
	{method: "GET", path: "/v1/stats/groups", need: needAdmin, handle: groupStats},
	{method: "GET", path: "/v1/delayed", need: needAdmin, handle: delayed},
	{method: "GET", path: "/v1/messages/{msgId}/trace", need: needAdmin, handle: traceMessage},
	{method: "POST", path: "/v1/messages/{msgId}/resend", need: needAdmin, handle: resendMessage},

	{method: "GET", path: "/v1/cluster", need: needAdmin, handle: cluster},
	{method: "GET", path: "/v1/cluster/groups", need: needAdmin, handle: clusterGroups},
	{method: "GET", path: "/v1/transactions", need: needAdmin, handle: transactions},
	{method: "POST", path: "/v1/topics/{topic}/transactions", need: needTopic(acl.Pub), handle: txBegin},
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/messages", need: needTopic(acl.Pub), handle: txSend},
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/commit", need: needTopic(acl.Pub), handle: txCommit},
	{method: "POST", path: "/v1/topics/{topic}/transactions/{id}/abort", need: needTopic(acl.Pub), handle: txAbort},
})

// healthRoutes are served outside the API router (health.go).
var healthRoutes = [][2]string{{"GET", "/livez"}, {"GET", "/readyz"}, {"GET", "/metrics"}}

func buildRoutes(rs []route) []route {
	for i := range rs {
		rs[i].segs = strings.Split(strings.Trim(rs[i].path, "/"), "/")
	}
	return rs
}

// serveAPI routes a request under /v1: it checks the caller's permission
// and runs the route's handler.
func (a *api) serveAPI(ctx *fasthttp.RequestCtx) {
	segs := strings.Split(strings.Trim(string(ctx.Path()), "/"), "/")
	method := string(ctx.Method())
	var allow []string
	for i := range routes {
		r := &routes[i]
		p, ok := matchRoute(r.segs, segs)
		if !ok {
			continue
		}
		if r.method != method && !(method == "HEAD" && r.method == "GET") {
			allow = append(allow, r.method)
			continue
		}
		if !a.allowed(ctx, r.key(), func() acl.Need { return r.need(ctx, p) }) {
			return
		}
		if err := r.handle(a, ctx, p); err != nil {
			writeProblem(ctx, err)
		}
		return
	}
	if len(allow) > 0 {
		ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
		writeProblem(ctx, fmt.Errorf("%w: %s %s; allowed: %s", protocol.ErrHTTPMethodNotAllowed, method, ctx.Path(), strings.Join(allow, ", ")))
		return
	}
	writeProblem(ctx, fmt.Errorf("%w: %s", protocol.ErrHTTPRouteNotFound, ctx.Path()))
}

// writeResult answers v with status, or err as its problem.
func writeResult[T any](ctx *fasthttp.RequestCtx, status int, v T, err error) error {
	if err != nil {
		return err
	}
	httpjson.WriteJSON(ctx, status, v)
	return nil
}

func matchRoute(pattern, segs []string) (httpjson.Params, bool) {
	if len(pattern) != len(segs) {
		return httpjson.Params{}, false
	}
	var p httpjson.Params
	for i, s := range pattern {
		if len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' {
			if segs[i] == "" {
				return httpjson.Params{}, false
			}
			p.Add(s[1:len(s)-1], segs[i])
			continue
		}
		if s != segs[i] {
			return httpjson.Params{}, false
		}
	}
	return p, true
}
