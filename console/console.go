// Package console is the web console served on the broker's HTTP port at
// /console/: hand-written HTML, CSS and JavaScript modules embedded in the
// binary. Everything it shows and does goes through the documented HTTP
// API (docs/openapi.yaml); it has no endpoints of its own.
//
// Assets are answered with an ETag (a hash of their content) and
// "Cache-Control: no-cache", so a browser revalidates and gets 304 until
// the binary changes. A path without a file extension that names no asset
// is answered with index.html, so the console's own links (/console/topics,
// /console/groups/g1) work when opened directly.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

//go:embed assets
var embedded embed.FS

type asset struct {
	body        []byte
	etag        string
	contentType string
}

var assets = load()

func load() map[string]asset {
	out := map[string]asset{}
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		out[p] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, contentType: contentType(p)}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return out
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Handles reports whether a request path belongs to the console: "/",
// "/console" and everything under /console/.
func Handles(p string) bool {
	return p == "/" || p == "/console" || strings.HasPrefix(p, Prefix)
}

// Serve answers a request whose path Handles accepts.
func Serve(ctx *fasthttp.RequestCtx) {
	p := string(ctx.Path())
	if p == "/" || p == "/console" {
		ctx.Response.Header.Set("Location", Prefix) // relative: right behind any host name
		ctx.SetStatusCode(fasthttp.StatusFound)
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		return
	}
	name := strings.TrimPrefix(p, Prefix)
	a, ok := assets[name]
	if !ok {
		if path.Ext(name) != "" {
			ctx.Error("not found\n", fasthttp.StatusNotFound)
			return
		}
		a = assets["index.html"]
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.SetContentType(a.contentType)
	if string(ctx.Request.Header.Peek("If-None-Match")) == a.etag {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetBody(a.body)
}
