package client

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestErrorModelPerTransport sends and looks things up against a real
// broker over the remoting protocol and over the HTTP API, and checks
// that each failure is the same error class on both: errors.Is with the
// package sentinel, errors.As a *ServerError carrying the wire code.
func TestErrorModelPerTransport(t *testing.T) {
	c := newCluster(t, 1, func(_ int, cfg *broker.Config) {
		cfg.AutoCreateTopic = false
		cfg.AutoCreateGroup = false
	})
	c.createTopic("open", 1)
	setPerm := func(perm int32) {
		t.Helper()
		if err := c.brokers[0].CreateTopic(broker.TopicConfig{TopicName: "readonly", ReadQueueNums: 1, WriteQueueNums: 1,
			Perm: perm}); err != nil {
			t.Fatal(err)
		}
	}
	setPerm(protocol.PermRead | protocol.PermWrite)
	waitReadRoute(t, c, "readonly")

	for _, tr := range []struct {
		name, endpoint string
	}{
		{"remoting", c.endpoint()},
		{"http", c.httpEndpoint(0)},
	} {
		t.Run(tr.name, func(t *testing.T) {
			ctx := ctxT(t)
			p := newTestProducer(t, tr.endpoint, WithRetries(0))
			_, err := p.Send(ctx, &Message{Topic: "nosuch", Body: []byte("x")})
			if !errors.Is(err, ErrTopicNotFound) {
				t.Errorf("send to an unknown topic: %v, want ErrTopicNotFound", err)
			}

			// Routes are cached: the refusals below come from the broker,
			// not from the client's view of the route.
			for _, topic := range []string{"readonly", "open"} {
				if _, err := p.Send(ctx, &Message{Topic: topic, Body: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			setPerm(protocol.PermRead)
			_, err = p.Send(ctx, &Message{Topic: "readonly", Body: []byte("x")})
			setPerm(protocol.PermRead | protocol.PermWrite)
			var se *ServerError
			if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &se) || se.Code != protocol.RespNoPermission {
				t.Errorf("send to a read-only topic: %v (%#v), want ErrPermissionDenied with code %d", err, se, protocol.RespNoPermission)
			}
			if errors.Is(err, ErrTopicNotFound) || errors.Is(err, ErrUnavailable) {
				t.Errorf("send to a read-only topic: %v is of more than one class", err)
			}

			c.brokers[0].Drain(true)
			_, err = p.Send(ctx, &Message{Topic: "open", Body: []byte("x")})
			c.brokers[0].Drain(false)
			se = nil
			if !errors.Is(err, ErrUnavailable) || !errors.As(err, &se) || se.Code != protocol.RespServiceNotAvailable {
				t.Errorf("send to a drained broker: %v, want ErrUnavailable with code %d", err, protocol.RespServiceNotAvailable)
			}

		})
	}
}

// TestServerErrorClasses checks the classes of answers by code and, for
// HTTP answers without a code of ours, by status.
func TestServerErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *ServerError
		is   []error
	}{
		{"remoting topic", &ServerError{Code: protocol.RespTopicNotExist}, []error{ErrTopicNotFound}},
		{"http topic", &ServerError{Code: protocol.ProblemTopicNotFound, Status: 404}, []error{ErrTopicNotFound}},
		{"remoting group", &ServerError{Code: protocol.RespSubscriptionGroupNotExist}, []error{ErrGroupNotFound}},
		{"http group exists", &ServerError{Code: protocol.ProblemGroupExists, Status: 409}, []error{ErrGroupExists}},
		{"flow control", &ServerError{Code: protocol.RespFlowControl}, []error{ErrThrottled}},
		{"http 429", &ServerError{Code: protocol.ProblemBusy, Status: http.StatusTooManyRequests}, []error{ErrThrottled}},
		{"http 429 no code", &ServerError{Status: http.StatusTooManyRequests}, []error{ErrThrottled}},
		{"http 401 no code", &ServerError{Status: http.StatusUnauthorized}, []error{ErrPermissionDenied}},
		{"http 413", &ServerError{Code: protocol.ProblemMessageIllegal, Status: http.StatusRequestEntityTooLarge}, []error{ErrMessageTooLarge, ErrInvalidMessage}},
		{"illegal", &ServerError{Code: protocol.RespMessageIllegal}, []error{ErrInvalidMessage}},
		{"fenced", &ServerError{Code: protocol.RespProducerFenced}, []error{ErrProducerFenced}},
		{"system error", &ServerError{Code: protocol.RespSystemError}, nil},
	} {
		all := []error{ErrTopicNotFound, ErrTopicExists, ErrGroupNotFound, ErrGroupExists, ErrMessageNotFound,
			ErrPermissionDenied, ErrUnavailable, ErrThrottled, ErrInvalidMessage, ErrProducerFenced, ErrOutOfOrderSequence}
		for _, s := range all {
			want := false
			for _, w := range tc.is {
				want = want || s == w
			}
			if got := errors.Is(tc.err, s); got != want {
				t.Errorf("%s: errors.Is(%v) = %v, want %v", tc.name, s, got, want)
			}
		}
	}
}

// waitReadRoute waits until the name server routes topic (read-only
// topics have no publish queues, so waitRoute does not fit).
func waitReadRoute(t *testing.T, c *cluster, topic string) {
	t.Helper()
	cfg := &config{namesrvAddrs: []string{c.ns.Addr()}, logger: nopLogger{}}
	rc := remoting.NewClient(remoting.ClientConfig{})
	defer rc.Close()
	rt := newRouteTable(cfg, rc)
	waitFor(t, 10*time.Second, "route of "+topic, func() bool {
		r, err := rt.fetch(context.Background(), topic)
		return err == nil && len(r.subscribe) > 0
	})
}
