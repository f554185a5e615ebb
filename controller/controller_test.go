package controller

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	cl = "c"
	bn = "broker-a"
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// must applies c and fails the test if it is refused.
func must(t *testing.T, s *State, c Command) Result {
	t.Helper()
	if c.Cluster == "" {
		c.Cluster, c.BrokerName = cl, bn
	}
	r := s.Apply(c)
	if r.Err != nil {
		t.Fatalf("%s refused: %v", c.Op, r.Err)
	}
	return r
}

func apply(s *State, c Command) Result {
	if c.Cluster == "" {
		c.Cluster, c.BrokerName = cl, bn
	}
	return s.Apply(c)
}

// group3 returns a state with replicas 1, 2, 3 registered and heartbeating
// at 0 ms, replica 1 elected master (epoch 1), and in-sync set {1,2,3}.
func group3(t *testing.T) *State {
	t.Helper()
	s := NewState()
	for id := int64(1); id <= 3; id++ {
		must(t, s, Command{Op: OpRegister, At: at(0), ReplicaID: id, Addr: "10.0.0." + string(rune('0'+id)) + ":10911"})
	}
	must(t, s, Command{Op: OpHeartbeat, At: at(0), ReplicaID: 1, MaxOffset: 100})
	r := must(t, s, Command{Op: OpElect, At: at(0)})
	if r.Group.MasterID != 1 || r.Group.Epoch != 1 {
		t.Fatalf("first election: %s", r.Reason)
	}
	must(t, s, Command{Op: OpAlterInSync, At: at(0), ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2, 3}})
	return s
}

func TestFirstElectionTakesMostData(t *testing.T) {
	s := NewState()
	if r := apply(s, Command{Op: OpElect, At: at(0)}); !errors.Is(r.Err, ErrUnknownGroup) {
		t.Fatalf("elect of an unknown group: %v", r.Err)
	}
	for id := int64(1); id <= 3; id++ {
		must(t, s, Command{Op: OpRegister, At: at(0), ReplicaID: id, Addr: "a"})
	}
	must(t, s, Command{Op: OpHeartbeat, At: at(10), ReplicaID: 2, MaxOffset: 500})
	r := must(t, s, Command{Op: OpElect, At: at(20)})
	if r.Group.MasterID != 2 || r.Group.Epoch != 1 || !slices.Equal(r.Group.InSync, []int64{2}) {
		t.Fatalf("got %v (%s)", r.Group, r.Reason)
	}
	if !strings.Contains(r.Reason, "first master") || r.PossibleDataLoss {
		t.Fatalf("reason %q loss %v", r.Reason, r.PossibleDataLoss)
	}
}

func TestElectionChoice(t *testing.T) {
	type rep struct {
		id, epoch, offset int64
		dead              bool
	}
	cases := []struct {
		name    string
		reps    []rep // besides the failed master 1
		inSync  []int64
		unclean bool
		want    int64 // NoMaster: refused with ErrNoCandidate
		loss    bool
	}{
		{"highest offset wins", []rep{{2, 1, 100, false}, {3, 1, 200, false}}, []int64{1, 2, 3}, false, 3, false},
		{"highest epoch before offset", []rep{{2, 1, 900, false}, {3, 2, 100, false}}, []int64{1, 2, 3}, false, 3, false},
		{"tie goes to lowest id", []rep{{2, 1, 100, false}, {3, 1, 100, false}}, []int64{1, 2, 3}, false, 2, false},
		{"only from the in-sync set", []rep{{2, 1, 100, false}, {3, 1, 900, false}}, []int64{1, 2}, false, 2, false},
		{"dead in-sync replicas are skipped", []rep{{2, 1, 900, true}, {3, 1, 100, false}}, []int64{1, 2, 3}, false, 3, false},
		{"no live in-sync replica, unclean off", []rep{{2, 1, 900, true}, {3, 1, 100, false}}, []int64{1, 2}, false, NoMaster, false},
		{"no live in-sync replica, unclean on", []rep{{2, 1, 900, true}, {3, 1, 100, false}}, []int64{1, 2}, true, 3, true},
		{"unclean on but an in-sync replica lives", []rep{{2, 1, 10, false}, {3, 1, 900, false}}, []int64{1, 2}, true, 2, false},
		{"master alone in the set", []rep{{2, 1, 100, false}}, []int64{1}, false, NoMaster, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState()
			must(t, s, Command{Op: OpRegister, At: at(0), ReplicaID: 1, Addr: "m"})
			must(t, s, Command{Op: OpElect, At: at(0)})
			for _, r := range tc.reps {
				must(t, s, Command{Op: OpRegister, At: at(0), ReplicaID: r.id, Addr: "r"})
			}
			must(t, s, Command{Op: OpAlterInSync, At: at(0), ReplicaID: 1, Epoch: 1, InSync: tc.inSync})
			if tc.unclean {
				must(t, s, Command{Op: OpConfigure, At: at(0), Config: &GroupConfig{UncleanElection: true}})
			}
			if tc.reps[0].epoch == 2 || len(tc.reps) > 1 && tc.reps[1].epoch == 2 {
				// Give the group an epoch 2 to report.
				s.Group(cl, bn).Epoch = 2
			}
			// Master 1 heartbeats last at 0 ms; the others at 2,000 ms unless dead.
			for _, r := range tc.reps {
				hb := at(2000)
				if r.dead {
					hb = at(0)
				}
				must(t, s, Command{Op: OpHeartbeat, At: hb, ReplicaID: r.id, Epoch: r.epoch, MaxOffset: r.offset})
			}
			before := s.Group(cl, bn).Epoch
			res := apply(s, Command{Op: OpElect, At: at(3500)})
			if res.Reason == "" {
				t.Fatal("no reason")
			}
			if tc.want == NoMaster {
				if !errors.Is(res.Err, ErrNoCandidate) {
					t.Fatalf("want no candidate, got %v (%s)", res.Err, res.Reason)
				}
				if g := s.Group(cl, bn); g.MasterID != 1 || g.Epoch != before {
					t.Fatalf("refused election changed the group: %v", g)
				}
				return
			}
			if res.Err != nil {
				t.Fatalf("refused: %v", res.Err)
			}
			g := res.Group
			if g.MasterID != tc.want || g.Epoch != before+1 {
				t.Fatalf("got master %d epoch %d, want %d epoch %d (%s)", g.MasterID, g.Epoch, tc.want, before+1, res.Reason)
			}
			if res.PossibleDataLoss != tc.loss {
				t.Fatalf("possible data loss %v, want %v (%s)", res.PossibleDataLoss, tc.loss, res.Reason)
			}
			if tc.loss != strings.Contains(res.Reason, "UNCLEAN") {
				t.Fatalf("reason %q", res.Reason)
			}
			if !g.InSyncContains(g.MasterID) || g.InSyncContains(1) {
				t.Fatalf("in-sync set after election %v", g.InSync)
			}
			if tc.loss && len(g.InSync) != 1 {
				t.Fatalf("in-sync set after unclean election %v", g.InSync)
			}
		})
	}
}

func TestUncleanElectionOffByDefault(t *testing.T) {
	s := group3(t)
	must(t, s, Command{Op: OpAlterInSync, At: at(100), ReplicaID: 1, Epoch: 1, InSync: []int64{1}})
	must(t, s, Command{Op: OpHeartbeat, At: at(4000), ReplicaID: 2, Epoch: 1, MaxOffset: 100})
	if g := s.Group(cl, bn); g.Config.UncleanElection {
		t.Fatal("unclean election on by default")
	}
	r := apply(s, Command{Op: OpElect, At: at(5000)})
	if !errors.Is(r.Err, ErrNoCandidate) || !strings.Contains(r.Reason, "unclean election off") {
		t.Fatalf("got %v: %s", r.Err, r.Reason)
	}
}

func TestInSyncChanges(t *testing.T) {
	cases := []struct {
		name    string
		cmd     Command
		wantErr error
		want    []int64
	}{
		{"shrink", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2}}, nil, []int64{1, 2}},
		{"shrink to the master", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{1}}, nil, []int64{1}},
		{"unsorted with duplicates", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{3, 1, 3}}, nil, []int64{1, 3}},
		{"stale epoch", Command{ReplicaID: 1, Epoch: 0, InSync: []int64{1}}, ErrStaleEpoch, nil},
		{"future epoch", Command{ReplicaID: 1, Epoch: 2, InSync: []int64{1}}, ErrBadCommand, nil},
		{"not from the master", Command{ReplicaID: 2, Epoch: 1, InSync: []int64{2}}, ErrNotMaster, nil},
		{"without the master", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{2, 3}}, ErrMasterNotInSync, nil},
		{"empty", Command{ReplicaID: 1, Epoch: 1}, ErrMasterNotInSync, nil},
		{"unknown replica", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{1, 9}}, ErrUnknownReplica, nil},
		{"after the lease", Command{ReplicaID: 1, Epoch: 1, InSync: []int64{1}, At: at(3000)}, ErrLeaseExpired, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := group3(t)
			before := s.Group(cl, bn).Clone()
			c := tc.cmd
			c.Op = OpAlterInSync
			if c.At.IsZero() {
				c.At = at(1000)
			}
			r := apply(s, c)
			if r.Reason == "" {
				t.Fatal("no reason")
			}
			g := s.Group(cl, bn)
			if tc.wantErr != nil {
				if !errors.Is(r.Err, tc.wantErr) {
					t.Fatalf("got %v, want %v", r.Err, tc.wantErr)
				}
				if !reflect.DeepEqual(g, before) {
					t.Fatalf("refused change altered the group: %v", g)
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if !slices.Equal(g.InSync, tc.want) || g.InSyncVersion != before.InSyncVersion+1 || g.Epoch != 1 {
				t.Fatalf("got %v v%d (%s)", g.InSync, g.InSyncVersion, r.Reason)
			}
		})
	}
	// Grow back after a shrink, and a no-op change keeps the version.
	s := group3(t)
	must(t, s, Command{Op: OpAlterInSync, At: at(100), ReplicaID: 1, Epoch: 1, InSync: []int64{1}})
	r := must(t, s, Command{Op: OpAlterInSync, At: at(200), ReplicaID: 1, Epoch: 1, InSync: []int64{1, 3}})
	if !slices.Equal(r.Group.InSync, []int64{1, 3}) || !strings.Contains(r.Reason, "added [3]") {
		t.Fatalf("grow: %s", r.Reason)
	}
	v := r.Group.InSyncVersion
	if r := must(t, s, Command{Op: OpAlterInSync, At: at(300), ReplicaID: 1, Epoch: 1, InSync: []int64{3, 1}}); r.Changed || r.Group.InSyncVersion != v {
		t.Fatalf("no-op change: %+v", r)
	}
}

func TestStaleMasterFencedAfterElection(t *testing.T) {
	s := group3(t)
	// The master heartbeats at 1 s: lease until 4 s.
	must(t, s, Command{Op: OpHeartbeat, At: at(1000), ReplicaID: 1, Epoch: 1, MaxOffset: 300})
	must(t, s, Command{Op: OpHeartbeat, At: at(3500), ReplicaID: 2, Epoch: 1, MaxOffset: 300})
	if r := apply(s, Command{Op: OpElect, At: at(3999)}); !errors.Is(r.Err, ErrMasterAlive) {
		t.Fatalf("election within the lease: %v", r.Err)
	}
	if !s.Group(cl, bn).LeaseValid(at(3999)) || s.Group(cl, bn).LeaseValid(at(4000)) {
		t.Fatal("LeaseValid around the expiry")
	}
	r := must(t, s, Command{Op: OpElect, At: at(4000)})
	if r.Group.MasterID != 2 || r.Group.Epoch != 2 || !slices.Equal(r.Group.InSync, []int64{2, 3}) {
		t.Fatalf("election: %v", r.Group)
	}
	// The old master comes back: it is told it is a slave and cannot change
	// the in-sync set with its old epoch.
	hb := must(t, s, Command{Op: OpHeartbeat, At: at(4100), ReplicaID: 1, Epoch: 1, MaxOffset: 400})
	rep := NewHeartbeatReply(hb.Group, 1, hb.Reason)
	if rep.Role != RoleSlave || rep.MasterID != 2 || rep.Epoch != 2 || rep.MasterAddr == "" {
		t.Fatalf("old master's reply: %+v", rep)
	}
	var l BrokerLease
	l.Renew(at(4100), 1, rep)
	if l.LeaseValid(at(4100)) {
		t.Fatal("deposed master keeps a lease")
	}
	if r := apply(s, Command{Op: OpAlterInSync, At: at(4200), ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2, 3}}); !errors.Is(r.Err, ErrStaleEpoch) {
		t.Fatalf("old master's in-sync change: %v", r.Err)
	}
	// The new master's heartbeat renews the lease it got at its election.
	must(t, s, Command{Op: OpHeartbeat, At: at(5000), ReplicaID: 2, Epoch: 2, MaxOffset: 300})
	if g := s.Group(cl, bn); !g.LeaseExpiry.Equal(at(8000)) {
		t.Fatalf("lease expiry %v", g.LeaseExpiry)
	}
	if r := apply(s, Command{Op: OpHeartbeat, At: at(5000), ReplicaID: 3, Epoch: 3}); !errors.Is(r.Err, ErrBadCommand) {
		t.Fatalf("heartbeat from a future epoch: %v", r.Err)
	}
}

func TestBrokerLeaseEndsBeforeControllers(t *testing.T) {
	s := group3(t)
	// Sent at 900 ms on the broker's clock, applied at 1,000 ms.
	r := must(t, s, Command{Op: OpHeartbeat, At: at(1000), ReplicaID: 1, Epoch: 1})
	rep := NewHeartbeatReply(r.Group, 1, r.Reason)
	var l BrokerLease
	l.Renew(at(900), 1, rep)
	if !l.LeaseValid(at(900)) || l.Epoch != 1 {
		t.Fatalf("lease not granted: %+v", l)
	}
	g := s.Group(cl, bn)
	if !l.Until.Before(g.LeaseExpiry) {
		t.Fatalf("broker lease %v not before the control plane's %v", l.Until, g.LeaseExpiry)
	}
	if l.LeaseValid(l.Until) || !g.LeaseValid(l.Until) {
		t.Fatal("at the broker's expiry the broker must stop while the control plane still waits")
	}
	// An older reply does not shorten the lease.
	l2 := l
	l2.Renew(at(100), 1, rep)
	if l2 != l {
		t.Fatalf("older heartbeat shortened the lease: %v -> %v", l.Until, l2.Until)
	}
	// A reply for another replica, or with no lease, ends it.
	l2.Renew(at(1000), 2, rep)
	if l2.LeaseValid(at(1000)) {
		t.Fatal("lease from a reply naming another master")
	}
}

func TestSwitchOver(t *testing.T) {
	cases := []struct {
		name    string
		target  int64
		prep    func(*testing.T, *State)
		wantErr error
	}{
		{"to an in-sync replica", 2, nil, nil},
		{"to the master", 1, nil, nil},
		{"unknown", 9, nil, ErrUnknownReplica},
		{"outside the set", 3, func(t *testing.T, s *State) {
			must(t, s, Command{Op: OpAlterInSync, At: at(10), ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2}})
		}, ErrNotInSync},
		{"to a silent replica", 2, func(t *testing.T, s *State) {
			must(t, s, Command{Op: OpHeartbeat, At: at(2500), ReplicaID: 3, Epoch: 1})
		}, ErrNoCandidate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := group3(t)
			if tc.prep != nil {
				tc.prep(t, s)
			}
			now := at(1000)
			if tc.name == "to a silent replica" {
				now = at(3500)
			}
			before := s.Group(cl, bn).Clone()
			r := apply(s, Command{Op: OpSwitchOver, At: now, Target: tc.target})
			if r.Reason == "" {
				t.Fatal("no reason")
			}
			g := s.Group(cl, bn)
			if tc.wantErr != nil {
				if !errors.Is(r.Err, tc.wantErr) || !reflect.DeepEqual(g, before) {
					t.Fatalf("got %v, group %v", r.Err, g)
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if tc.target == before.MasterID {
				if r.Changed || g.Epoch != before.Epoch {
					t.Fatalf("switch-over to the master changed the group: %v", g)
				}
				return
			}
			if g.MasterID != tc.target || g.Epoch != before.Epoch+1 || !slices.Equal(g.InSync, before.InSync) {
				t.Fatalf("got %v (%s)", g, r.Reason)
			}
			if !g.LeaseValid(now) || !strings.Contains(g.LastReason, "planned") {
				t.Fatalf("new master's lease / reason: %v %q", g.LeaseExpiry, g.LastReason)
			}
		})
	}
}

func TestBadCommands(t *testing.T) {
	s := group3(t)
	before := s.Clone()
	for _, c := range []Command{
		{Op: "nope", At: at(1), Cluster: cl, BrokerName: bn},
		{Op: OpRegister, At: at(1), Cluster: cl, BrokerName: bn, ReplicaID: -1, Addr: "a"},
		{Op: OpRegister, At: at(1), Cluster: cl, BrokerName: bn, ReplicaID: 4},
		{Op: OpRegister, ReplicaID: 4, Addr: "a", Cluster: cl, BrokerName: bn},
		{Op: OpHeartbeat, At: at(1), Cluster: cl},
		{Op: OpHeartbeat, At: at(1), Cluster: cl, BrokerName: bn, ReplicaID: 9},
		{Op: OpConfigure, At: at(1), Cluster: cl, BrokerName: bn},
		{Op: OpConfigure, At: at(1), Cluster: cl, BrokerName: bn, Config: &GroupConfig{Lease: -1}},
		{Op: OpAnnounceLeader, At: at(1)},
	} {
		r := s.Apply(c)
		if r.Err == nil || r.Reason == "" {
			t.Errorf("%+v: accepted (%s)", c, r.Reason)
		}
		if ErrorKind(r.Err) == "" {
			t.Errorf("%+v: error %v has no kind", c, r.Err)
		}
	}
	if !reflect.DeepEqual(s, before) {
		t.Fatal("refused commands changed the state")
	}
}

func TestErrorKindRoundTrip(t *testing.T) {
	for _, k := range errorKinds {
		if got := ErrorOfKind(ErrorKind(k.err)); got != k.err {
			t.Errorf("%s: %v", k.name, got)
		}
	}
}

// TestOneMasterPerEpoch applies long random command sequences and checks
// the invariants after every command: one master per epoch, epochs never
// go back, the master is always in the in-sync set, and a master is never
// replaced while its lease holds except by a switch-over.
func TestOneMasterPerEpoch(t *testing.T) {
	epochs := 0
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		s := NewState()
		s.Apply(Command{Op: OpRegister, At: at(0), Cluster: cl, BrokerName: bn, ReplicaID: 1, Addr: "a",
			Config: &GroupConfig{UncleanElection: seed%2 == 0}})
		masters := map[int64]int64{}
		lastEpoch := int64(0)
		now := 0
		for step := 0; step < 400; step++ {
			now += rng.IntN(800)
			id := int64(rng.IntN(4) + 1)
			g := s.Group(cl, bn)
			var c Command
			switch rng.IntN(6) {
			case 0:
				c = Command{Op: OpRegister, ReplicaID: id, Addr: "a"}
			case 1, 2:
				c = Command{Op: OpHeartbeat, ReplicaID: id, Epoch: g.Epoch - int64(rng.IntN(2)), MaxOffset: int64(rng.IntN(1000))}
			case 3:
				set := []int64{}
				for i := int64(1); i <= 4; i++ {
					if rng.IntN(2) == 0 {
						set = append(set, i)
					}
				}
				c = Command{Op: OpAlterInSync, ReplicaID: id, Epoch: g.Epoch - int64(rng.IntN(2)), InSync: set}
			case 4:
				c = Command{Op: OpElect}
			case 5:
				c = Command{Op: OpSwitchOver, Target: id}
			}
			c.At, c.Cluster, c.BrokerName = at(now), cl, bn
			prev := g.Clone()
			r := s.Apply(c)
			g = s.Group(cl, bn)
			if r.Reason == "" {
				t.Fatalf("seed %d step %d: %s without a reason", seed, step, c.Op)
			}
			if g.Epoch < lastEpoch {
				t.Fatalf("seed %d: epoch went back %d -> %d", seed, lastEpoch, g.Epoch)
			}
			lastEpoch = g.Epoch
			if g.MasterID == NoMaster {
				continue
			}
			if m, ok := masters[g.Epoch]; ok && m != g.MasterID {
				t.Fatalf("seed %d step %d: epoch %d has masters %d and %d", seed, step, g.Epoch, m, g.MasterID)
			}
			masters[g.Epoch] = g.MasterID
			if !g.InSyncContains(g.MasterID) {
				t.Fatalf("seed %d step %d: master %d outside in-sync set %v (%s)", seed, step, g.MasterID, g.InSync, r.Reason)
			}
			if prev.MasterID != NoMaster && g.MasterID != prev.MasterID && c.Op != OpSwitchOver && prev.LeaseValid(c.At) {
				t.Fatalf("seed %d step %d: master %d replaced within its lease", seed, step, prev.MasterID)
			}
			if r.PossibleDataLoss && (!g.Config.UncleanElection || prev.InSyncContains(g.MasterID)) {
				t.Fatalf("seed %d step %d: data loss flagged wrongly", seed, step)
			}
		}
		epochs += len(masters)
	}
	if epochs < 200 {
		t.Fatalf("only %d epochs over 50 runs: the sequences hardly elect", epochs)
	}
}

func TestStateJSONRoundTrip(t *testing.T) {
	s := group3(t)
	must(t, s, Command{Op: OpHeartbeat, At: at(500), ReplicaID: 2, Epoch: 1, MaxOffset: 77, LastEpoch: EpochEntry{1, 0}})
	s.Apply(Command{Op: OpAnnounceLeader, ServerID: "n1", Addr: "127.0.0.1:9876"})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// time.Time loses its monotonic reading and location pointer in JSON;
	// compare the re-encoding.
	b2, _ := json.Marshal(&back)
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\n%s\n%s", b, b2)
	}
	c := Command{Op: OpAlterInSync, At: at(3), Cluster: cl, BrokerName: bn, ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2}}
	cb, _ := json.Marshal(c)
	var cback Command
	if err := json.Unmarshal(cb, &cback); err != nil || !reflect.DeepEqual(cback.InSync, c.InSync) || !cback.At.Equal(c.At) {
		t.Fatalf("command round trip: %s -> %+v %v", cb, cback, err)
	}
}
