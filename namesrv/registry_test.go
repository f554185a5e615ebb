package namesrv

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrymq/ferry/remoting"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func topicCfg(name string, r, w, perm int32) remoting.TopicConfig {
	return remoting.TopicConfig{TopicName: name, ReadQueueNums: r, WriteQueueNums: w, Perm: perm, TopicFilterType: remoting.TopicFilterSingleTag}
}

func topics(cfgs ...remoting.TopicConfig) map[string]remoting.TopicConfig {
	m := make(map[string]remoting.TopicConfig)
	for _, c := range cfgs {
		m[c.TopicName] = c
	}
	return m
}

func reg(cluster, name, addr string, id int64, t map[string]remoting.TopicConfig) Registration {
	return Registration{Cluster: cluster, BrokerName: name, BrokerAddr: addr, BrokerID: id, Topics: t, HAServerAddr: addr + "-ha"}
}

func routeJSON(t *testing.T, r *Registry, topic string) string {
	t.Helper()
	route, ok := r.Route(topic)
	if !ok {
		return ""
	}
	b, err := route.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRegistryRoutes(t *testing.T) {
	type step struct {
		do    func(r *Registry, clk *fakeClock)
		topic string
		want  string // "" = no route
	}
	qd := func(name string, rq, wq, perm int) string {
		return `{"brokerName":"` + name + `","readQueueNums":` + itoa(rq) + `,"writeQueueNums":` + itoa(wq) + `,"perm":` + itoa(perm) + `,"topicSysFlag":0}`
	}
	route := func(qds, bds string) string {
		return `{"queueDatas":[` + qds + `],"brokerDatas":[` + bds + `],"filterServerTable":{}}`
	}
	bdA := `{"cluster":"C","brokerName":"a","brokerAddrs":{"0":"10.0.0.1:10911"}}`
	bdAwithSlave := `{"cluster":"C","brokerName":"a","brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}}`
	bdB := `{"cluster":"C","brokerName":"b","brokerAddrs":{"0":"10.0.0.3:10911"}}`

	regA := func(t map[string]remoting.TopicConfig) func(*Registry, *fakeClock) {
		return func(r *Registry, _ *fakeClock) { r.Register(reg("C", "a", "10.0.0.1:10911", 0, t)) }
	}
	regSlave := func(t map[string]remoting.TopicConfig) func(*Registry, *fakeClock) {
		return func(r *Registry, _ *fakeClock) { r.Register(reg("C", "a", "10.0.0.2:10911", 1, t)) }
	}
	regB := func(t map[string]remoting.TopicConfig) func(*Registry, *fakeClock) {
		return func(r *Registry, _ *fakeClock) { r.Register(reg("C", "b", "10.0.0.3:10911", 0, t)) }
	}
	advance := func(d time.Duration) func(*Registry, *fakeClock) {
		return func(r *Registry, c *fakeClock) { c.Advance(d); r.Expire() }
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"unknown topic", []step{{regA(topics(topicCfg("T", 4, 4, 6))), "X", ""}}},
		{"single master", []step{{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)}}},
		{"only the master builds queueDatas", []step{
			{regSlave(topics(topicCfg("T", 8, 8, 6), topicCfg("S", 1, 1, 6))), "T", ""},
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdAwithSlave)},
			{regSlave(topics(topicCfg("T", 8, 8, 6))), "S", ""},
		}},
		{"two brokers for one topic, sorted", []step{
			{regB(topics(topicCfg("T", 2, 2, 6))), "T", route(qd("b", 2, 2, 6), bdB)},
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6)+","+qd("b", 2, 2, 6), bdA+","+bdB)},
		}},
		{"a new table replaces the broker's view", []step{
			{regA(topics(topicCfg("T", 4, 4, 6), topicCfg("U", 1, 1, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{regB(topics(topicCfg("T", 2, 2, 6))), "T", route(qd("a", 4, 4, 6)+","+qd("b", 2, 2, 6), bdA+","+bdB)},
			{regA(topics(topicCfg("U", 2, 1, 4))), "T", route(qd("b", 2, 2, 6), bdB)},
			{nil, "U", route(qd("a", 2, 1, 4), bdA)},
			{regA(topics()), "U", ""},
			{nil, "T", route(qd("b", 2, 2, 6), bdB)},
		}},
		{"nil topics keeps the previous view", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{regA(nil), "T", route(qd("a", 4, 4, 6), bdA)},
		}},
		{"expiry", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{advance(60 * time.Second), "T", route(qd("a", 4, 4, 6), bdA)},
			{regB(topics(topicCfg("T", 2, 2, 6))), "T", route(qd("a", 4, 4, 6)+","+qd("b", 2, 2, 6), bdA+","+bdB)},
			{advance(60 * time.Second), "T", route(qd("a", 4, 4, 6)+","+qd("b", 2, 2, 6), bdA+","+bdB)}, // exactly 120 s: kept
			{advance(time.Second), "T", route(qd("b", 2, 2, 6), bdB)},
			{advance(60 * time.Second), "T", ""},
		}},
		{"re-registration keeps a broker alive", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{advance(100 * time.Second), "T", route(qd("a", 4, 4, 6), bdA)},
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{advance(100 * time.Second), "T", route(qd("a", 4, 4, 6), bdA)},
		}},
		{"delete topic", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) { r.DeleteTopic("T", "") }, "T", ""},
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)}, // the broker brings it back
		}},
		{"delete topic in one cluster", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) {
				r.Register(reg("D", "d", "10.0.0.9:10911", 0, topics(topicCfg("T", 1, 1, 6))))
				r.DeleteTopic("T", "D")
			}, "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) { r.DeleteTopic("T", "C") }, "T", ""},
		}},
		{"unregister master keeps slave and queues", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{regSlave(nil), "T", route(qd("a", 4, 4, 6), bdAwithSlave)},
			{func(r *Registry, _ *fakeClock) { r.Unregister("C", "a", "10.0.0.1:10911", 0) }, "T",
				route(qd("a", 4, 4, 6), `{"cluster":"C","brokerName":"a","brokerAddrs":{"1":"10.0.0.2:10911"}}`)},
			{func(r *Registry, _ *fakeClock) { r.Unregister("C", "a", "10.0.0.2:10911", 1) }, "T", ""},
		}},
		{"connection close", []step{
			{func(r *Registry, _ *fakeClock) {
				x := reg("C", "a", "10.0.0.1:10911", 0, topics(topicCfg("T", 4, 4, 6)))
				x.ConnID = 7
				r.Register(x)
			}, "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) { r.ConnClosed(8) }, "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) { r.ConnClosed(7) }, "T", ""},
		}},
		{"broker moves to a new address", []step{
			{regA(topics(topicCfg("T", 4, 4, 6))), "T", route(qd("a", 4, 4, 6), bdA)},
			{func(r *Registry, _ *fakeClock) {
				r.Register(reg("C", "a", "10.0.0.7:10911", 0, topics(topicCfg("T", 4, 4, 6))))
			}, "T", route(qd("a", 4, 4, 6), `{"cluster":"C","brokerName":"a","brokerAddrs":{"0":"10.0.0.7:10911"}}`)},
			{func(r *Registry, _ *fakeClock) {
				if n := r.BrokerCount(); n != 1 {
					panic("stale address kept alive")
				}
			}, "T", route(qd("a", 4, 4, 6), `{"cluster":"C","brokerName":"a","brokerAddrs":{"0":"10.0.0.7:10911"}}`)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			r := NewRegistry(clk.Now, 120*time.Second)
			for i, s := range tc.steps {
				if s.do != nil {
					s.do(r, clk)
				}
				if got := routeJSON(t, r, s.topic); got != s.want {
					t.Fatalf("step %d, route %q:\n got %s\nwant %s", i, s.topic, got, s.want)
				}
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestRegistryResultClusterInfoTopics(t *testing.T) {
	clk := newFakeClock()
	r := NewRegistry(clk.Now, 0)
	res, isNew := r.Register(reg("C", "a", "10.0.0.1:10911", 0, topics(topicCfg("T", 4, 4, 6), topicCfg("TBW102", 8, 8, 7))))
	if res != (remoting.RegisterBrokerResult{}) || !isNew {
		t.Fatalf("master result %+v new=%v", res, isNew)
	}
	if _, isNew := r.Register(reg("C", "a", "10.0.0.1:10911", 0, nil)); isNew {
		t.Fatal("re-registration reported as new")
	}
	res, _ = r.Register(reg("C", "a", "10.0.0.2:10911", 1, nil))
	if res.MasterAddr != "10.0.0.1:10911" || res.HAServerAddr != "10.0.0.1:10911-ha" {
		t.Fatalf("slave result %+v", res)
	}
	r.Register(reg("C2", "b", "10.0.0.3:10911", 0, topics(topicCfg("U", 1, 1, 6))))

	b, err := r.ClusterInfo().Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"brokerAddrTable":{"a":{"cluster":"C","brokerName":"a","brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}},` +
		`"b":{"cluster":"C2","brokerName":"b","brokerAddrs":{"0":"10.0.0.3:10911"}}},"clusterAddrTable":{"C":["a"],"C2":["b"]}}`
	if string(b) != want {
		t.Fatalf("cluster info\n got %s\nwant %s", b, want)
	}
	if got := r.Topics(); !reflect.DeepEqual(got, []string{"T", "TBW102", "U"}) {
		t.Fatal(got)
	}
	clk.Advance(121 * time.Second)
	if exp := r.Expire(); len(exp) != 3 {
		t.Fatalf("expired %+v", exp)
	}
	b, _ = r.ClusterInfo().Encode()
	if string(b) != `{"brokerAddrTable":{},"clusterAddrTable":{}}` || len(r.Topics()) != 0 || r.BrokerCount() != 0 {
		t.Fatalf("after expiry: %s %v", b, r.Topics())
	}
}

// TestRegistryClusterInfoHTTPAddrs: a broker's registered HTTP address is
// listed under ferryHttpAddrs by broker address; one without is left out,
// and the field goes with the broker's registration.
func TestRegistryClusterInfoHTTPAddrs(t *testing.T) {
	clk := newFakeClock()
	r := NewRegistry(clk.Now, 0)
	a := reg("C", "a", "10.0.0.1:10911", 0, nil)
	a.HTTPAddr = "10.0.0.1:8080"
	r.Register(a)
	r.Register(reg("C", "b", "10.0.0.2:10911", 0, nil))
	b, err := r.ClusterInfo().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"ferryHttpAddrs":{"10.0.0.1:10911":"10.0.0.1:8080"}`) {
		t.Fatalf("cluster info %s", b)
	}
	a.HTTPAddr = "10.0.0.1:8081" // restarted on another port
	r.Register(a)
	if got := r.ClusterInfo().HTTPAddrs; !reflect.DeepEqual(got, map[string]string{"10.0.0.1:10911": "10.0.0.1:8081"}) {
		t.Fatalf("after re-registration: %v", got)
	}
	r.Unregister("C", "a", "10.0.0.1:10911", 0)
	if got := r.ClusterInfo().HTTPAddrs; got != nil {
		t.Fatalf("after unregistration: %v", got)
	}
}
