package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/acl"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// HTTP authentication and authorization. With an ACL file, every API
// route needs HTTP Basic credentials (access key as user, secret key as
// password) and the permission its route names (router.go), the same as
// the remoting request doing the same thing (package acl). /livez and
// /readyz stay open; /metrics needs an account when metrics_auth is set;
// /debug/pprof (only served when pprof is set) needs admin.

// needFunc says what a request to a route needs.
type needFunc func(ctx *fasthttp.RequestCtx, p httpjson.Params) acl.Need

func needAdmin(*fasthttp.RequestCtx, httpjson.Params) acl.Need { return acl.Need{Admin: true} }

func needTopic(perm acl.Perm) needFunc {
	return func(_ *fasthttp.RequestCtx, p httpjson.Params) acl.Need {
		return acl.Need{Res: []acl.Resource{acl.TopicResource(p.Get("topic"), perm)}}
	}
}

func needGroup(perm acl.Perm) needFunc {
	return func(_ *fasthttp.RequestCtx, p httpjson.Params) acl.Need {
		return acl.Need{Res: []acl.Resource{acl.GroupResource(p.Get("group"), perm)}}
	}
}

// needReceive is SUB on the group and on the body's topic.
func needReceive(ctx *fasthttp.RequestCtx, p httpjson.Params) acl.Need {
	var in struct {
		Topic string `json:"topic"`
	}
	_ = json.Unmarshal(ctx.PostBody(), &in)
	return acl.Need{Res: []acl.Resource{acl.GroupResource(p.Get("group"), acl.Sub), acl.TopicResource(in.Topic, acl.Sub)}}
}

// allowed authenticates and authorizes a request to route, answering it
// when refused.
func (a *api) allowed(ctx *fasthttp.RequestCtx, route string, need func() acl.Need) bool {
	rules := a.be.Auth.Rules()
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
	audit := a.be.Auth.Audit()
	if err != nil {
		check := "malformed"
		if r, ok := err.(*acl.Refusal); ok {
			check = r.Check
		}
		audit.Refused(user, remote, "http", route, check, err.Error())
		// A script (curl) is told to send Basic credentials; the console
		// (X-Requested-With) is not, so the browser shows the console's
		// own sign-in instead of its built-in password box.
		if status == fasthttp.StatusUnauthorized && len(ctx.Request.Header.Peek("X-Requested-With")) == 0 {
			ctx.Response.Header.Set("WWW-Authenticate", `Basic realm="ferry"`)
		}
		httpjson.WriteJSON(ctx, status, protocol.Problem{Type: protocol.ProblemTypePrefix + "no-permission", Title: "no permission",
			Status: status, Detail: err.Error(), Code: int(protocol.RespNoPermission)})
		return false
	}
	if n.Admin {
		audit.Admin(id.Name(), remote, "http", route)
	}
	return true
}

// basicAuth parses an Authorization: Basic header.
func basicAuth(ctx *fasthttp.RequestCtx) (user, pass string, ok bool) {
	h := string(ctx.Request.Header.Peek("Authorization"))
	const prefix = "Basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}
