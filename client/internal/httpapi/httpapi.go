// Package httpapi holds what the SDK's HTTP transport and the admin
// client share to speak a broker's JSON API: one request, read whole,
// and Basic authentication on a copy of the caller's http.Client.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/ferrymq/ferry/remoting"
)

// maxAnswer bounds an answer read into memory.
const maxAnswer = 64 << 20

// Answer is a broker's HTTP answer, read whole.
type Answer struct {
	Status int
	Header http.Header
	Data   []byte
}

// Do sends one JSON request (in, if not nil, as the body) to base+path
// and reads the answer whole; transport errors come back as they are.
func Do(ctx context.Context, hc *http.Client, base, method, path string, query url.Values, in any) (Answer, error) {
	u := base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Answer{}, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return Answer{}, fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Answer{}, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	return Answer{Status: resp.StatusCode, Header: resp.Header, Data: data}, nil
}

// Decode unmarshals a successful answer into out (if not nil).
func (a Answer) Decode(method, path string, out any) error {
	if out == nil || len(bytes.TrimSpace(a.Data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(a.Data, out); err != nil {
		return fmt.Errorf("client: %s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

// WithBasicAuth returns a copy of hc that sends creds as Basic
// authentication, or hc itself when there are none. The caller's client
// is not changed.
func WithBasicAuth(hc *http.Client, creds remoting.Credentials) *http.Client {
	if creds.IsZero() {
		return hc
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cp := *hc
	cp.Transport = basicAuth{next: next, creds: creds}
	return &cp
}

type basicAuth struct {
	next  http.RoundTripper
	creds remoting.Credentials
}

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.SetBasicAuth(b.creds.AccessKey, b.creds.SecretKey)
	return b.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (b basicAuth) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
