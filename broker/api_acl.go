package broker

import (
	"encoding/base64"
	"encoding/json"
	"github.com/ferrymq/ferry/protocol"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/acl"
)

// HTTP authentication and authorization. With an ACL file, every API
// route needs HTTP Basic credentials (access key as user, secret key as
// password) and the permission below, the same as the remoting request
// doing the same thing (package acl). /livez and /readyz stay open;
// /metrics needs an account when metrics_auth is set; /debug/pprof (only
// served when pprof is set) needs admin.

// httpNeed returns what a request to a route needs.
type httpNeed func(ctx *fasthttp.RequestCtx, p apiParams) acl.Need

var (
	needAdmin httpNeed = func(*fasthttp.RequestCtx, apiParams) acl.Need { return acl.Need{Admin: true} }
)

func needTopic(perm acl.Perm) httpNeed {
	return func(_ *fasthttp.RequestCtx, p apiParams) acl.Need {
		return acl.Need{Res: []acl.Resource{acl.TopicResource(p.get("topic"), perm)}}
	}
}

func needGroup(perm acl.Perm) httpNeed {
	return func(_ *fasthttp.RequestCtx, p apiParams) acl.Need {
		return acl.Need{Res: []acl.Resource{acl.GroupResource(p.get("group"), perm)}}
	}
}

// needReceive is SUB on the group and on the body's topic.
func needReceive(ctx *fasthttp.RequestCtx, p apiParams) acl.Need {
	var in struct {
		Topic string `json:"topic"`
	}
	_ = json.Unmarshal(ctx.PostBody(), &in)
	return acl.Need{Res: []acl.Resource{acl.GroupResource(p.get("group"), acl.Sub), acl.TopicResource(in.Topic, acl.Sub)}}
}

// httpNeeds maps every API route ("METHOD path") to what it needs.
var httpNeeds = map[string]httpNeed{
	"GET /v1/broker":          needAdmin,
	"GET /v1/broker/config":   needAdmin,
	"PUT /v1/broker/config":   needAdmin,
	"POST /v1/broker/drain":   needAdmin,
	"POST /v1/broker/undrain": needAdmin,
	"GET /v1/broker/stats":    needAdmin,
	"GET /v1/stats/topics":    needAdmin,
	"GET /v1/stats/groups":    needAdmin,
	"GET /v1/delayed":         needAdmin,
	"GET /v1/producers":       needAdmin,
	"GET /v1/transactions":    needAdmin,
	"GET /v1/cluster":         needAdmin,
	"GET /v1/cluster/groups":  needAdmin,

	"GET /v1/topics":                                     needAdmin,
	"POST /v1/topics":                                    needAdmin,
	"GET /v1/topics/{topic}":                             needTopic(acl.Any),
	"PUT /v1/topics/{topic}":                             needAdmin,
	"DELETE /v1/topics/{topic}":                          needAdmin,
	"POST /v1/topics/{topic}/messages":                   needTopic(acl.Pub),
	"POST /v1/topics/{topic}/transactions":               needTopic(acl.Pub),
	"POST /v1/topics/{topic}/transactions/{id}/messages": needTopic(acl.Pub),
	"POST /v1/topics/{topic}/transactions/{id}/commit":   needTopic(acl.Pub),
	"POST /v1/topics/{topic}/transactions/{id}/abort":    needTopic(acl.Pub),
	"GET /v1/topics/{topic}/messages":                    needTopic(acl.Sub),
	"GET /v1/topics/{topic}/queues/{queue}/messages":     needTopic(acl.Sub),
	"GET /v1/messages/{msgId}":                           needAdmin,
	"GET /v1/messages/{msgId}/trace":                     needAdmin,
	"POST /v1/messages/{msgId}/resend":                   needAdmin,

	"GET /v1/groups":                        needAdmin,
	"POST /v1/groups":                       needAdmin,
	"GET /v1/groups/{group}":                needGroup(acl.Sub),
	"PUT /v1/groups/{group}":                needAdmin,
	"DELETE /v1/groups/{group}":             needAdmin,
	"GET /v1/groups/{group}/lag":            needGroup(acl.Sub),
	"GET /v1/groups/{group}/clients":        needGroup(acl.Sub),
	"GET /v1/groups/{group}/offsets":        needGroup(acl.Sub),
	"PUT /v1/groups/{group}/offsets":        needGroup(acl.Sub),
	"POST /v1/groups/{group}/offsets/reset": needAdmin,
	"POST /v1/groups/{group}/receive":       needReceive,
	"POST /v1/groups/{group}/ack":           needGroup(acl.Sub),
	"POST /v1/groups/{group}/nack":          needGroup(acl.Sub),
	"GET /v1/groups/{group}/dlq":            needGroup(acl.Sub),
	"POST /v1/groups/{group}/dlq/resend":    needAdmin,
}

// httpAllowed authenticates and authorizes an HTTP request, answering it
// when refused. Routes missing from httpNeeds need admin.
func (b *Broker) httpAllowed(ctx *fasthttp.RequestCtx, route string, need func() acl.Need) bool {
	rules := b.aclRules()
	if rules == nil {
		return true
	}
	user, pass, ok := basicAuth(ctx)
	host, _ := netip.AddrFromSlice(ctx.RemoteIP())
	id, err := rules.Basic(host, user, pass, ok)
	status := fasthttp.StatusUnauthorized
	n := need()
	if err == nil {
		status = fasthttp.StatusForbidden
		err = acl.Authorize(id, n, route)
	}
	remote := ctx.RemoteAddr().String()
	if err != nil {
		check := "malformed"
		if r, ok := err.(*acl.Refusal); ok {
			check = r.Check
		}
		b.audit.Refused(user, remote, "http", route, check, err.Error())
		// A script (curl) is told to send Basic credentials; the console
		// (X-Requested-With) is not, so the browser shows the console's
		// own sign-in instead of its built-in password box.
		if status == fasthttp.StatusUnauthorized && len(ctx.Request.Header.Peek("X-Requested-With")) == 0 {
			ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="ferry"`)
		}
		writeJSON(ctx, status, protocol.Problem{Type: protocol.ProblemTypePrefix + "no-permission", Title: "no permission",
			Status: status, Detail: err.Error(), Code: int(protocol.RespNoPermission)})
		return false
	}
	if n.Admin {
		b.audit.Admin(id.Name(), remote, "http", route)
	}
	return true
}

// apiAllowed checks a request to an API route.
func (b *Broker) apiAllowed(ctx *fasthttp.RequestCtx, r *apiRoute, p apiParams) bool {
	key := r.method + " " + r.path
	return b.httpAllowed(ctx, key, func() acl.Need {
		if f, ok := httpNeeds[key]; ok {
			return f(ctx, p)
		}
		return acl.Need{Admin: true}
	})
}

// basicAuth parses an Authorization: Basic header.
func basicAuth(ctx *fasthttp.RequestCtx) (user, pass string, ok bool) {
	h := string(ctx.Request.Header.Peek("Authorization"))
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	return parseBasic(h[len(prefix):])
}

func parseBasic(b64 string) (user, pass string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}
