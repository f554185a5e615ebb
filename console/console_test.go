package console

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// serve starts Serve on an in-memory listener and returns a client for it.
func serve(t *testing.T) *http.Client {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{Handler: Serve}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &http.Client{
		Transport:     &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return ln.Dial() }},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func TestServe(t *testing.T) {
	c := serve(t)
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://console"+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, p := range []string{"/", "/console"} {
		if r := get(p); r.StatusCode != 302 || r.Header.Get("Location") != "/console/" {
			t.Fatalf("%s: %d %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	cases := []struct{ path, ctype string }{
		{"/console/", "text/html; charset=utf-8"},
		{"/console/topics/orders", "text/html; charset=utf-8"}, // a deep link: index.html
		{"/console/app.js", "text/javascript; charset=utf-8"},
		{"/console/pages/groups.js", "text/javascript; charset=utf-8"},
		{"/console/style.css", "text/css; charset=utf-8"},
		{"/console/favicon.svg", "image/svg+xml"},
	}
	for _, tc := range cases {
		r := get(tc.path)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != tc.ctype || r.Header.Get("Cache-Control") != "no-cache" ||
			r.Header.Get("ETag") == "" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d %v", tc.path, r.StatusCode, r.Header)
		}
		if r2 := get(tc.path, "If-None-Match", r.Header.Get("ETag")); r2.StatusCode != 304 {
			t.Fatalf("%s revalidated: %d", tc.path, r2.StatusCode)
		}
	}
	if r := get("/console/nope.js"); r.StatusCode != 404 {
		t.Fatalf("missing asset: %d", r.StatusCode)
	}
	req, _ := http.NewRequest("POST", "http://console/console/app.js", strings.NewReader("x"))
	if r, err := c.Do(req); err != nil || r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %v %v", r, err)
	}
}

// TestAssetsAreModules: every page module the app imports is embedded, and
// index.html loads the app as a module from the console's own path.
func TestAssetsAreModules(t *testing.T) {
	idx := string(assets["index.html"].body)
	if !strings.Contains(idx, `<script type="module" src="/console/app.js">`) {
		t.Fatal("index.html does not load /console/app.js as a module")
	}
	app := string(assets["app.js"].body)
	for _, p := range []string{"overview", "topics", "groups", "messages", "dlq", "delayed"} {
		if !strings.Contains(app, `"./pages/`+p+`.js"`) {
			t.Errorf("app.js does not import page %s", p)
		}
		if _, ok := assets["pages/"+p+".js"]; !ok {
			t.Errorf("pages/%s.js is not embedded", p)
		}
	}
	for name, a := range assets {
		body := strings.ReplaceAll(string(a.body), "http://www.w3.org/2000/svg", "") // a namespace name, not fetched
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "//cdn") {
			t.Errorf("%s refers to an outside address", name)
		}
	}
}
