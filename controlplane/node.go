package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"

	"github.com/ferrymq/ferry/controller"
)

const defaultLease = controller.DefaultLease

// ErrNotLeader is returned by proposals on a node that does not lead.
var ErrNotLeader = errors.New("controlplane: not the leader")

// Node is one voter of the control plane: a raft member whose state
// machine is a controller.State.
//
// Goroutines: hashicorp/raft's own, and the ticker that proposes elections
// while this node leads; all gone when Close returns.
type Node struct {
	cfg        Config
	log        zerolog.Logger
	raft       *raft.Raft
	fsm        *fsm
	trans      *raft.NetworkTransport
	closeStore func() error
	quit       chan struct{}
	wg         sync.WaitGroup
	once       sync.Once
}

// Open opens (or creates) the node's raft data in cfg.Dir, joins the
// voters and starts the ticker. A node with no existing raft state
// bootstraps the configuration of cfg.Peers (every voter may do so with
// the same list).
func Open(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger, fsm: &fsm{st: controller.NewState()}, quit: make(chan struct{})}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, DisableTime: true, Output: &hclogWriter{log: cfg.Logger}})

	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("controlplane: open %s (is another name server using it?): %w", cfg.Dir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.ListenAddr); err != nil {
			store.Close()
			return nil, fmt.Errorf("controlplane: listen %s: %w", cfg.ListenAddr, err)
		}
	}
	self := n.selfPeer(ln)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &stream{Listener: ln, advertise: self.Addr}, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	logs, err := raft.NewLogCache(256, store)
	if err == nil {
		var has bool
		has, err = raft.HasExistingState(logs, store, snaps)
		if err == nil && !has {
			err = raft.BootstrapCluster(rc, logs, store, snaps, n.trans, n.voters(self))
		}
	}
	if err == nil {
		n.raft, err = raft.NewRaft(rc, n.fsm, logs, store, snaps, n.trans)
	}
	if err != nil {
		n.trans.Close()
		store.Close()
		return nil, fmt.Errorf("controlplane: start raft: %w", err)
	}
	n.closeStore = store.Close
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.tick()
	}()
	n.log.Info().Str("id", cfg.ID).Str("addr", self.Addr).Stringer("peers", peerList(n.voterPeers(self))).
		Msg("controlplane: started")
	return n, nil
}

// selfPeer is this node as the others reach it.
func (n *Node) selfPeer(ln net.Listener) Peer {
	for _, p := range n.cfg.Peers {
		if p.ID == n.cfg.ID {
			return p
		}
	}
	return Peer{ID: n.cfg.ID, Addr: ln.Addr().String()}
}

func (n *Node) voterPeers(self Peer) []Peer {
	if len(n.cfg.Peers) == 0 {
		return []Peer{self}
	}
	return n.cfg.Peers
}

func (n *Node) voters(self Peer) raft.Configuration {
	var c raft.Configuration
	for _, p := range n.voterPeers(self) {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	return c
}

type peerList []Peer

func (l peerList) String() string { return fmt.Sprint([]Peer(l)) }

// Close stops the ticker and leaves raft (without handing leadership over:
// the others elect a new leader). It is safe to call more than once.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		close(n.quit)
		n.wg.Wait()
		err = n.raft.Shutdown().Error()
		n.trans.CloseStreams()
		if cerr := n.trans.Close(); err == nil {
			err = cerr
		}
		if cerr := n.closeStore(); err == nil {
			err = cerr
		}
	})
	return err
}

// Snapshot has raft snapshot the state now and compact its log (raft also
// does so by itself as the log grows).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// ID returns this node's server id.
func (n *Node) ID() string { return n.cfg.ID }

// IsLeader reports whether this node leads the control plane.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderNamesrvAddr returns the name-server address of the current leader,
// "" when there is none or it has not announced itself yet.
func (n *Node) LeaderNamesrvAddr() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	n.fsm.mu.Lock()
	defer n.fsm.mu.Unlock()
	return n.fsm.st.Servers[string(id)]
}

// State returns a copy of this node's state (a follower's may lag).
func (n *Node) State() *controller.State {
	n.fsm.mu.Lock()
	defer n.fsm.mu.Unlock()
	return n.fsm.st.Clone()
}

// group returns a copy of one group of this node's state, nil if unknown.
func (n *Node) group(cluster, brokerName string) *controller.Group {
	n.fsm.mu.Lock()
	defer n.fsm.mu.Unlock()
	if g := n.fsm.st.Group(cluster, brokerName); g != nil {
		return g.Clone()
	}
	return nil
}

// Propose stamps c with the time (unless set) and commits it through raft.
// It returns ErrNotLeader on a node that does not lead; a refused command
// is a Result with Err set, not an error.
func (n *Node) Propose(c controller.Command) (controller.Result, error) {
	if c.At.IsZero() {
		c.At = n.cfg.Now()
	}
	data, err := json.Marshal(c)
	if err != nil {
		return controller.Result{}, fmt.Errorf("controlplane: encode %s: %w", c.Op, err)
	}
	f := n.raft.Apply(data, n.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return controller.Result{}, fmt.Errorf("%w (%v)", ErrNotLeader, err)
		}
		return controller.Result{}, fmt.Errorf("controlplane: commit %s: %w", c.Op, err)
	}
	res, ok := f.Response().(controller.Result)
	if !ok {
		return controller.Result{}, fmt.Errorf("controlplane: %s: state machine answered %T", c.Op, f.Response())
	}
	if res.Changed || res.PossibleDataLoss {
		ev := n.log.Info()
		if res.PossibleDataLoss {
			ev = n.log.Error().Bool("possible_data_loss", true)
		}
		ev.Str("op", string(c.Op)).Str("cluster", c.Cluster).Str("broker", c.BrokerName).
			Msg("controlplane: " + res.Reason)
	}
	return res, nil
}

// tick proposes, while this node leads, an election for every group whose
// master's lease has run out, and announces this node's name-server
// address. A node that has just become leader waits one lease first: the
// brokers' heartbeats went to the old leader, or nowhere while there was
// none, and deserve the time to find this one.
func (n *Node) tick() {
	t := time.NewTicker(n.cfg.TickInterval)
	defer t.Stop()
	var leaderSince time.Time
	lastRefusal := map[string]string{}
	for {
		select {
		case <-n.quit:
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			leaderSince = time.Time{}
			continue
		}
		if leaderSince.IsZero() {
			// Decide on the state of every entry committed so far.
			if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
				n.log.Warn().Err(err).Msg("controlplane: catching up as the new leader")
				continue
			}
			leaderSince = n.cfg.Now()
			n.log.Info().Str("id", n.cfg.ID).Msg("controlplane: leading")
		}
		now := n.cfg.Now()
		st := n.State()
		if st.Servers[n.cfg.ID] != n.cfg.NamesrvAddr {
			if _, err := n.Propose(controller.Command{Op: controller.OpAnnounceLeader, ServerID: n.cfg.ID, Addr: n.cfg.NamesrvAddr}); err != nil {
				n.log.Warn().Err(err).Msg("controlplane: announce")
			}
		}
		for _, g := range electionsDue(st, now, leaderSince) {
			res, err := n.Propose(controller.Command{Op: controller.OpElect, At: now, Cluster: g.Cluster, BrokerName: g.BrokerName})
			if err != nil {
				n.log.Warn().Err(err).Str("broker", g.BrokerName).Msg("controlplane: election")
				continue
			}
			if res.Err != nil && lastRefusal[g.Key()] != res.Reason {
				// Say it once, not every tick.
				n.log.Warn().Str("cluster", g.Cluster).Str("broker", g.BrokerName).Msg("controlplane: no election: " + res.Reason)
			}
			lastRefusal[g.Key()] = res.Reason
		}
	}
}

// electionsDue returns the groups the leader should hold an election for
// at now: those whose master's lease has run out, or that never had a
// master. Groups with a master wait until the leader has led for one lease
// (leaderSince), so their masters can find the new leader first.
func electionsDue(st *controller.State, now, leaderSince time.Time) []*controller.Group {
	var due []*controller.Group
	for _, g := range st.SortedGroups() {
		lease := g.Config.Lease
		if lease <= 0 {
			lease = defaultLease
		}
		if g.LeaseValid(now) || (g.Epoch > 0 && now.Sub(leaderSince) < lease) {
			continue
		}
		due = append(due, g)
	}
	return due
}

// fsm applies committed commands to the state.
type fsm struct {
	mu sync.Mutex
	st *controller.State
}

func (f *fsm) Apply(l *raft.Log) any {
	var c controller.Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return controller.Result{Err: fmt.Errorf("%w: undecodable log entry %d: %v", controller.ErrBadCommand, l.Index, err),
			Reason: "undecodable log entry"}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Apply(c)
}

// Snapshot encodes the state as JSON.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := json.Marshal(f.st)
	if err != nil {
		return nil, fmt.Errorf("controlplane: snapshot: %w", err)
	}
	return snapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := controller.NewState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("controlplane: restore snapshot: %w", err)
	}
	if st.Groups == nil {
		st.Groups = map[string]*controller.Group{}
	}
	if st.Servers == nil {
		st.Servers = map[string]string{}
	}
	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}

// stream is raft's transport over the control port. It closes the
// connections it accepted when it closes (raft's transport leaves them to
// the peer), so a stopped node leaves no goroutine behind.
type stream struct {
	net.Listener
	advertise string

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func (s *stream) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	if s.conns == nil {
		s.conns = map[*trackedConn]struct{}{}
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

func (s *stream) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.Listener.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

func (s *stream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

func (s *stream) Addr() net.Addr { return advertisedAddr(s.advertise) }

type trackedConn struct {
	net.Conn
	s *stream
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// hclogWriter turns raft's log lines into zerolog events at their level.
type hclogWriter struct{ log zerolog.Logger }

func (w *hclogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	ev := w.log.Info()
	switch {
	case bytes.Contains(p, []byte("[ERROR]")):
		ev = w.log.Error()
	case bytes.Contains(p, []byte("[WARN]")):
		ev = w.log.Warn()
	case bytes.Contains(p, []byte("[DEBUG]")), bytes.Contains(p, []byte("[TRACE]")):
		ev = w.log.Debug()
	}
	ev.Str("component", "raft").Msg(line)
	return len(p), nil
}
