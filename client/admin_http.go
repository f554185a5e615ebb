package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// The HTTP transport: one broker's /v1 API. Errors come back as problem
// documents ({"title","status","detail"}); 404 and 409 map to the
// package's not-found and already-exists errors.

func adminPathEscape(s string) string { return url.PathEscape(s) }

// adminHTTP does one request: body (if not nil) is sent as JSON and the
// answer decoded into out (if not nil).
func (a *Admin) adminHTTP(ctx context.Context, method, path string, query map[string]string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	u := a.base + path
	if len(query) > 0 {
		v := url.Values{}
		for k, x := range query {
			v.Set(k, x)
		}
		u += "?" + v.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(data, &p)
		msg := p.Detail
		if msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		err := fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, msg)
		switch {
		case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/v1/topics/"):
			return fmt.Errorf("%w: %w", ErrNoSuchTopic, err)
		case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/v1/groups/"):
			return fmt.Errorf("%w: %w", ErrNoSuchGroup, err)
		case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/v1/messages/"):
			return fmt.Errorf("%w: %w", ErrNoSuchMessage, err)
		case resp.StatusCode == http.StatusConflict && strings.HasPrefix(path, "/v1/topics"):
			return fmt.Errorf("%w: %w", ErrTopicExists, err)
		case resp.StatusCode == http.StatusConflict && strings.HasPrefix(path, "/v1/groups"):
			return fmt.Errorf("%w: %w", ErrGroupExists, err)
		}
		return fmt.Errorf("client: %w", err)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: malformed answer: %w", method, path, err)
	}
	return nil
}

func (a *Admin) adminHTTPBrokers(ctx context.Context, sample time.Duration) ([]BrokerStatus, error) {
	get := func() (BrokerStatus, error) {
		var s struct {
			BrokerStatus
			ClusterName string `json:"cluster_name"`
		}
		err := a.adminHTTP(ctx, "GET", "/v1/broker", nil, nil, &s)
		s.BrokerStatus.Cluster = s.ClusterName
		s.BrokerStatus.Role = adminRole(s.BrokerID)
		return s.BrokerStatus, err
	}
	s, err := get()
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
	s2, err := get()
	if err != nil {
		return nil, err
	}
	secs := time.Since(t0).Seconds()
	s2.MsgInPerSec, s2.MsgOutPerSec = (s2.MsgInTotal-s.MsgInTotal)/secs, (s2.MsgOutTotal-s.MsgOutTotal)/secs
	return []BrokerStatus{s2}, nil
}

// adminHTTPTopic is a topic's configuration in the HTTP API.
func adminHTTPTopic(tc remoting.TopicConfig) map[string]any {
	return map[string]any{"topic": tc.TopicName, "read_queues": tc.ReadQueueNums, "write_queues": tc.WriteQueueNums,
		"perm": remoting.PermString(tc.Perm), "order": tc.Order}
}

func adminHTTPTopicUpdate(u TopicUpdate) map[string]any {
	m := map[string]any{}
	if u.ReadQueues != nil {
		m["read_queues"] = *u.ReadQueues
	}
	if u.WriteQueues != nil {
		m["write_queues"] = *u.WriteQueues
	}
	if u.Perm != nil {
		m["perm"] = *u.Perm
	}
	if u.Order != nil {
		m["order"] = *u.Order
	}
	return m
}

var _ = errors.New
