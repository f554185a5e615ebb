// Package httpjson holds the HTTP API's request and answer plumbing over
// fasthttp: problem bodies (application/problem+json, RFC 9457), JSON
// answers, request bodies and query parameters, and a route's path
// parameters.
//
// A problem body is
//
//	{"type": "urn:ferry:problem:<slug>", "title", "status", "detail", "code"}
//
// where "code" is stable (protocol.Problem*): a RocketMQ response code
// where one fits, Ferry's own in the 1000 range otherwise. The API's own
// error classes are protocol.HTTPError values.
package httpjson

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/ferrymq/ferry/protocol"
)

// Problem is an application/problem+json body and its Retry-After.
type Problem struct {
	protocol.Problem
	RetryAfter int `json:"-"` // seconds; 0: no Retry-After header
}

// WriteProblem answers with p.
func WriteProblem(ctx *fasthttp.RequestCtx, p Problem) {
	if p.RetryAfter > 0 {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	ctx.SetStatusCode(p.Status)
	ctx.SetContentType("application/problem+json")
	body, _ := json.Marshal(p)
	ctx.SetBody(body)
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	b, _ := json.Marshal(v)
	ctx.SetBody(b)
}

// DecodeBody decodes a JSON request body into v, refusing unknown fields
// so that a misspelt field is an error rather than silently ignored, and
// invalid UTF-8, which encoding/json would silently replace with U+FFFD.
func DecodeBody(ctx *fasthttp.RequestCtx, v any) error {
	body := ctx.PostBody()
	if len(body) == 0 {
		return fmt.Errorf("%w: a JSON body is required", protocol.ErrHTTPBadInput)
	}
	if !utf8.Valid(body) {
		at := 0
		for at < len(body) {
			r, n := utf8.DecodeRune(body[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return fmt.Errorf("%w: the JSON body is not valid UTF-8 (byte %d); send binary bodies base64-encoded or as application/octet-stream", protocol.ErrHTTPBadInput, at)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON body: %v", protocol.ErrHTTPBadInput, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON body", protocol.ErrHTTPBadInput)
	}
	return nil
}

// QueryInt reads an integer query parameter, def when absent.
func QueryInt(ctx *fasthttp.RequestCtx, name string, def int64) (int64, error) {
	v := ctx.QueryArgs().Peek(name)
	if len(v) == 0 {
		return def, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: query parameter %s=%q is not an integer", protocol.ErrHTTPBadInput, name, v)
	}
	return n, nil
}

// QueryIntIn reads an integer query parameter that must lie in [lo, hi].
func QueryIntIn(ctx *fasthttp.RequestCtx, name string, def, lo, hi int64) (int64, error) {
	n, err := QueryInt(ctx, name, def)
	if err != nil {
		return 0, err
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%d must be %d to %d (absent: %d)", protocol.ErrHTTPBadInput, name, n, lo, hi, def)
	}
	return n, nil
}

// Params are a request's path parameters, in path order.
type Params struct {
	names, values []string
}

// Add appends a parameter.
func (p *Params) Add(name, value string) {
	p.names = append(p.names, name)
	p.values = append(p.values, value)
}

// Get is the value of the parameter name, "" without one.
func (p Params) Get(name string) string {
	for i, n := range p.names {
		if n == name {
			return p.values[i]
		}
	}
	return ""
}
