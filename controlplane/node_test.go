package controlplane

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/controller"
)

func TestElectionsDue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := controller.NewState()
	lease := 2 * time.Second
	reg := func(name string, id int64) {
		st.Apply(controller.Command{Op: controller.OpRegister, At: t0, Cluster: "c", BrokerName: name, ReplicaID: id, Addr: "a",
			Config: &controller.GroupConfig{Lease: lease}})
	}
	reg("fresh", 1) // never had a master
	reg("held", 1)  // master heartbeats
	reg("lost", 1)  // master went silent
	for _, name := range []string{"held", "lost"} {
		st.Apply(controller.Command{Op: controller.OpElect, At: t0, Cluster: "c", BrokerName: name})
	}
	st.Apply(controller.Command{Op: controller.OpHeartbeat, At: t0.Add(4 * time.Second), Cluster: "c", BrokerName: "held", ReplicaID: 1, Epoch: 1})
	names := func(gs []*controller.Group) string {
		var s []string
		for _, g := range gs {
			s = append(s, g.BrokerName)
		}
		return strings.Join(s, ",")
	}
	now := t0.Add(5 * time.Second)
	cases := []struct {
		name        string
		leaderSince time.Time
		want        string
	}{
		{"leading long", t0, "fresh,lost"},
		{"just became leader: only the group that never had a master", now.Add(-time.Second), "fresh"},
		{"led for one lease", now.Add(-lease), "fresh,lost"},
	}
	for _, tc := range cases {
		if got := names(electionsDue(st, now, tc.leaderSince)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := ParsePeers([]string{"a@127.0.0.1:9878", " b@host:1 ", ""})
	if err != nil || len(ps) != 2 || ps[1] != (Peer{"b", "host:1"}) {
		t.Fatalf("got %v %v", ps, err)
	}
	for _, bad := range [][]string{{"127.0.0.1:9878"}, {"@h:1"}, {"a@nohostport"}, {"a@h:1", "a@h:2"}} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	base := func() Config { return Config{Dir: "d", ListenAddr: ":0", NamesrvAddr: "x:1"} }
	c := base()
	if err := c.validate(); err != nil || c.ID != "1" || c.Lease != controller.DefaultLease || c.TickInterval != c.Lease/4 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for name, mod := range map[string]func(*Config){
		"no dir":           func(c *Config) { c.Dir = "" },
		"no listen":        func(c *Config) { c.ListenAddr = "" },
		"no namesrv addr":  func(c *Config) { c.NamesrvAddr = "" },
		"peers without id": func(c *Config) { c.Peers = []Peer{{"a", "h:1"}} },
		"id not a peer":    func(c *Config) { c.Peers = []Peer{{"a", "h:1"}}; c.ID = "b" },
		"negative lease":   func(c *Config) { c.Lease = -1 },
		"lease timeouts": func(c *Config) {
			c.HeartbeatTimeout, c.LeaderLeaseTimeout = time.Second, 2*time.Second
		},
	} {
		c := base()
		mod(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
