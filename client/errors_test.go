package client

import (
	"context"
	"errors"
	"fmt"
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
		if err := c.brokers[0].Admin().CreateTopic(broker.TopicConfig{TopicName: "readonly", ReadQueueNums: 1, WriteQueueNums: 1,
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
			checkTopicNotFound(t, "send to an unknown topic", err)

			// A consumer asks the name servers (remoting) or the broker
			// (HTTP) about the topic: the same error either way.
			pc, err := NewPullConsumer(tr.endpoint, WithGroup("g-errors"))
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			_, err = pc.Queues(ctx, "nosuch")
			checkTopicNotFound(t, "queues of an unknown topic", err)

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

			c.brokers[0].Admin().Drain(true)
			_, err = p.Send(ctx, &Message{Topic: "open", Body: []byte("x")})
			c.brokers[0].Admin().Drain(false)
			se = nil
			if !errors.Is(err, ErrUnavailable) || !errors.As(err, &se) || se.Code != protocol.RespServiceNotAvailable {
				t.Errorf("send to a drained broker: %v, want ErrUnavailable with code %d", err, protocol.RespServiceNotAvailable)
			}

		})
	}
}

// checkTopicNotFound checks that err is ErrTopicNotFound and a
// *ServerError whose code says so.
func checkTopicNotFound(t *testing.T, what string, err error) {
	t.Helper()
	var se *ServerError
	if !errors.Is(err, ErrTopicNotFound) || !errors.As(err, &se) || se.Class() != protocol.ClassTopicNotFound {
		t.Errorf("%s: %v (%#v), want ErrTopicNotFound and a *ServerError with its code", what, err, se)
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrPermissionDenied) {
		t.Errorf("%s: %v is of more than one class", what, err)
	}
}

// TestRouteMissIsFinal checks that the name servers' "no route" answer is
// the unknown topic's error with its code, and is not retried (no broker
// has the topic), while a broker's TOPIC_NOT_EXIST is.
func TestRouteMissIsFinal(t *testing.T) {
	miss := &noRouteError{topic: "orders", se: &ServerError{Broker: "127.0.0.1:9876", Code: protocol.RespTopicNotExist}}
	var err error = fmt.Errorf("wrapped: %w", miss)
	var se *ServerError
	if !errors.Is(err, ErrTopicNotFound) || !errors.As(err, &se) || se.Code != protocol.RespTopicNotExist {
		t.Errorf("route miss %v: not ErrTopicNotFound with its code", err)
	}
	if retriable(err) {
		t.Errorf("route miss %v is retried", err)
	}
	if !retriable(&ServerError{Broker: "127.0.0.1:10911", Code: protocol.RespTopicNotExist}) {
		t.Error("a broker's TOPIC_NOT_EXIST is not retried")
	}
	if want := "client: no such topic: orders (the name server at 127.0.0.1:9876 has no route for it)"; miss.Error() != want {
		t.Errorf("route miss reads %q, want %q", miss.Error(), want)
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
