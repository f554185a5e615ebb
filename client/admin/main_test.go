package admin

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/client"
	"github.com/ferrymq/ferry/httpapi"
	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/namesrv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestErrorClassesPerTransport looks things up against a real broker
// through its name server and through its HTTP API, and checks that each
// failure is the client's class sentinel on both.
func TestErrorClassesPerTransport(t *testing.T) {
	ns, b := startBroker(t)
	if err := b.Admin().CreateTopic(broker.TopicConfig{TopicName: "open", ReadQueueNums: 1, WriteQueueNums: 1}); err != nil {
		t.Fatal(err)
	}

	for _, tr := range []struct{ name, endpoint string }{
		{"remoting", ns.Addr()},
		{"http", "http://" + b.HTTPAddr()},
	} {
		t.Run(tr.name, func(t *testing.T) {
			ctx := ctxT(t)
			a, err := New(tr.endpoint)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			// The broker registers with the name server in the background.
			if poll.Until(ctx, 10*time.Second, 10*time.Millisecond, func() bool {
				_, err = a.DescribeTopic(ctx, "open")
				return err == nil
			}) != nil {
				t.Fatalf("topic open not visible: %v", err)
			}
			if _, err := a.DescribeTopic(ctx, "nosuch"); !errors.Is(err, client.ErrTopicNotFound) {
				t.Errorf("describe of an unknown topic: %v, want ErrTopicNotFound", err)
			}
			if _, err := a.Group(ctx, "nosuch"); !errors.Is(err, client.ErrGroupNotFound) {
				t.Errorf("lookup of an unknown group: %v, want ErrGroupNotFound", err)
			}
			if _, err := a.Message(ctx, "0123456789ABCDEF0123456789ABCDEF"); !errors.Is(err, client.ErrMessageNotFound) {
				t.Errorf("lookup of an unknown message: %v, want ErrMessageNotFound", err)
			}
			if _, err := a.CreateTopic(ctx, TopicSpec{Topic: "open"}); !errors.Is(err, client.ErrTopicExists) {
				t.Errorf("create of an existing topic: %v, want ErrTopicExists", err)
			}
			if _, err := a.CreateGroup(ctx, GroupSpec{Group: "g-" + tr.name}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.CreateGroup(ctx, GroupSpec{Group: "g-" + tr.name}); !errors.Is(err, client.ErrGroupExists) {
				t.Errorf("create of an existing group: %v, want ErrGroupExists", err)
			}
		})
	}
}

// startBroker starts a name server and a broker (without auto-creation)
// on 127.0.0.1 for the test.
func startBroker(t *testing.T) (*namesrv.Server, *broker.Broker) {
	t.Helper()
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Shutdown(context.Background()) })
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.BrokerName = "broker-a"
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port = "127.0.0.1", "127.0.0.1", 0
	cfg.HTTPHost, cfg.HTTPPort = "127.0.0.1", 0
	cfg.SegmentSize = 16 << 20
	cfg.NamesrvAddrs = []string{ns.Addr()}
	cfg.AutoCreateTopic, cfg.AutoCreateGroup = false, false
	b, err := broker.New(cfg, broker.WithHTTP(httpapi.Mount()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return ns, b
}

func TestAdminDedupWindow(t *testing.T) {
	ns, b := startBroker(t)
	for _, ep := range []string{ns.Addr(), "http://" + b.HTTPAddr()} {
		a, err := New(ep)
		if err != nil {
			t.Fatal(err)
		}
		topic := "dd" + strconv.Itoa(len(ep))
		if _, err := a.CreateTopic(ctxT(t), TopicSpec{Topic: topic, ReadQueues: 1, WriteQueues: 1, DedupWindow: 10 * time.Minute}); err != nil {
			t.Fatalf("%s: %v", ep, err)
		}
		if tc, _ := b.Admin().Topic(topic); tc.DedupWindowMs != (10 * time.Minute).Milliseconds() {
			t.Fatalf("%s: created with window %d ms", ep, tc.DedupWindowMs)
		}
		off := time.Duration(0)
		if _, err := a.UpdateTopic(ctxT(t), topic, TopicUpdate{DedupWindow: &off}); err != nil {
			t.Fatal(err)
		}
		if tc, _ := b.Admin().Topic(topic); tc.DedupWindowMs != 0 {
			t.Fatalf("%s: window after turning it off: %d ms", ep, tc.DedupWindowMs)
		}
		a.Close()
	}
}
