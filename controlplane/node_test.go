package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/internal/poll"
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

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSnapshotRestore: a single voter's state comes back after a restart
// from a snapshot plus the log after it.
func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	open := func() *Node {
		n, err := Open(Config{Dir: dir, ListenAddr: "127.0.0.1:0", NamesrvAddr: "127.0.0.1:9876",
			HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if poll.Until(context.Background(), 10*time.Second, 10*time.Millisecond, n.IsLeader) != nil {
			t.Fatal("single voter never led")
		}
		return n
	}
	propose := func(n *Node, c controller.Command) {
		t.Helper()
		c.Cluster, c.BrokerName = "c", "g"
		res, err := n.Propose(c)
		if err != nil || res.Err != nil {
			t.Fatalf("%s: %v %v", c.Op, err, res.Err)
		}
	}
	n := open()
	for id := int64(1); id <= 2; id++ {
		propose(n, controller.Command{Op: controller.OpRegister, ReplicaID: id, Addr: "a"})
		propose(n, controller.Command{Op: controller.OpHeartbeat, ReplicaID: id})
	}
	propose(n, controller.Command{Op: controller.OpElect})
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	g := n.State().Group("c", "g")
	propose(n, controller.Command{Op: controller.OpAlterInSync, ReplicaID: g.MasterID, Epoch: 1, InSync: []int64{1, 2}})
	want, _ := json.Marshal(n.State().Group("c", "g"))
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	n = open()
	defer n.Close()
	// A restarted leader applies the entries after the snapshot once it has
	// committed one of its own term.
	var got []byte
	if poll.Until(context.Background(), 10*time.Second, 10*time.Millisecond, func() bool {
		got, _ = json.Marshal(n.State().Group("c", "g"))
		return string(got) == string(want)
	}) != nil {
		t.Fatalf("after restart:\n%s\nwant\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatalf("no snapshot written: %v", err)
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	f := &fsm{st: controller.NewState()}
	if err := f.Restore(io.NopCloser(strings.NewReader("{not json"))); err == nil {
		t.Fatal("garbage snapshot restored")
	}
	res := f.Apply(&raft.Log{Index: 7, Data: []byte("nope")}).(controller.Result)
	if !errors.Is(res.Err, controller.ErrBadCommand) {
		t.Fatalf("undecodable entry: %v", res.Err)
	}
}
