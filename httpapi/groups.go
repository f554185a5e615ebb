package httpapi

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/internal/httpjson"
	"github.com/ferrymq/ferry/protocol"
)

// Groups is the broker's consumer-group administration: /v1/groups.
type Groups interface {
	List() []protocol.HTTPGroup
	Get(name string) (protocol.HTTPGroup, error)
	// Create creates the group in.Name; absent fields take the defaults.
	Create(in protocol.HTTPGroupInput) (protocol.HTTPGroup, error)
	// Update changes the fields in sets of group name.
	Update(name string, in protocol.HTTPGroupInput) (protocol.HTTPGroup, error)
	Delete(name string) error
	Lag(group string) (protocol.HTTPLag, error)
	Clients(group string) ([]broker.ClientInfo, error)
	ResetOffsets(group string, in protocol.HTTPOffsetReset) (protocol.HTTPOffsetResetResult, error)
	DeadLetters(group string, from int64, n int) (protocol.DLQPage, error)
	ResendDeadLetters(group string, in protocol.HTTPDLQResend) (protocol.DLQResendResult, error)
}

func listGroups(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	httpjson.WriteJSON(ctx, fasthttp.StatusOK, a.be.Groups.List())
	return nil
}

func createGroup(a *api, ctx *fasthttp.RequestCtx, _ httpjson.Params) error {
	var in protocol.HTTPGroupInput
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	g, err := a.be.Groups.Create(in)
	return writeResult(ctx, fasthttp.StatusCreated, g, err)
}

func getGroup(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	g, err := a.be.Groups.Get(p.Get("group"))
	return writeResult(ctx, fasthttp.StatusOK, g, err)
}

func updateGroup(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	name := p.Get("group")
	var in protocol.HTTPGroupInput
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	if in.Name != "" && in.Name != name {
		return fmt.Errorf("%w: body names group %q, the path %q (groups cannot be renamed)", protocol.ErrHTTPBadInput, in.Name, name)
	}
	g, err := a.be.Groups.Update(name, in)
	return writeResult(ctx, fasthttp.StatusOK, g, err)
}

func deleteGroup(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	if err := a.be.Groups.Delete(p.Get("group")); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func groupLag(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	lag, err := a.be.Groups.Lag(p.Get("group"))
	return writeResult(ctx, fasthttp.StatusOK, lag, err)
}

func groupClients(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	cs, err := a.be.Groups.Clients(p.Get("group"))
	return writeResult(ctx, fasthttp.StatusOK, cs, err)
}

// resetOffsets computes (and with execute, commits) a group's offsets of
// a topic. Executing refuses while the group has online consumers.
func resetOffsets(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in protocol.HTTPOffsetReset
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	res, err := a.be.Groups.ResetOffsets(p.Get("group"), in)
	return writeResult(ctx, fasthttp.StatusOK, res, err)
}

// deadLetters lists a group's dead letters: ?from=<offset>&max=<n>.
func deadLetters(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	from, err := httpjson.QueryIntIn(ctx, "from", 0, 0, 1<<62)
	if err != nil {
		return err
	}
	n, err := httpjson.QueryIntIn(ctx, "max", 100, 1, 1000)
	if err != nil {
		return err
	}
	page, err := a.be.Groups.DeadLetters(p.Get("group"), from, int(n))
	return writeResult(ctx, fasthttp.StatusOK, page, err)
}

func resendDeadLetters(a *api, ctx *fasthttp.RequestCtx, p httpjson.Params) error {
	var in protocol.HTTPDLQResend
	if err := httpjson.DecodeBody(ctx, &in); err != nil {
		return err
	}
	res, err := a.be.Groups.ResendDeadLetters(p.Get("group"), in)
	return writeResult(ctx, fasthttp.StatusOK, res, err)
}
