package controlplane

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of Config.
const (
	DefaultApplyTimeout       = 5 * time.Second
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
)

// Peer is one voter of the control plane: its server id and the address
// of its control port.
type Peer struct {
	ID   string
	Addr string
}

func (p Peer) String() string { return p.ID + "@" + p.Addr }

// ParsePeers reads "id@host:port" entries.
func ParsePeers(list []string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, e := range list {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		id, addr, ok := strings.Cut(e, "@")
		if !ok || id == "" {
			return nil, fmt.Errorf("controlplane: peer %q: want id@host:port", e)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("controlplane: peer %q: %w", e, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("controlplane: peer id %q listed twice", id)
		}
		seen[id] = true
		out = append(out, Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// Config configures a control-plane node.
type Config struct {
	// ID is this node's server id. With Peers it must name one of them;
	// alone it defaults to "1".
	ID string
	// Peers are all the voters, this node included, as they reach each
	// other's control ports. Empty: a single-voter group of this node.
	Peers []Peer
	// ListenAddr is the control port's TCP address ("host:port"). Ignored
	// when Listener is set.
	ListenAddr string
	// Listener, if set, is the control port already open.
	Listener net.Listener
	// Dir holds the raft log, stable store and snapshots.
	Dir string
	// NamesrvAddr is the address brokers reach this name server's remoting
	// port at; a follower sends brokers to the leader's.
	NamesrvAddr string

	// Lease and UncleanElection are the settings of groups that register
	// (controller.GroupConfig).
	Lease           time.Duration
	UncleanElection bool
	// TickInterval is how often the leader looks for masters whose lease
	// has run out (default Lease/4).
	TickInterval time.Duration
	// ApplyTimeout bounds one proposal.
	ApplyTimeout time.Duration
	// Raft timings (hashicorp/raft's Config).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	// Now is the clock that stamps proposals (default time.Now).
	Now func() time.Time
	// Logger: zero value disabled.
	Logger zerolog.Logger
}

// validate fills defaults and checks the settings.
func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("controlplane: Dir must name where the raft data lives")
	}
	if c.Listener == nil && c.ListenAddr == "" {
		return errors.New("controlplane: ListenAddr (the control port) is not set")
	}
	if c.NamesrvAddr == "" {
		return errors.New("controlplane: NamesrvAddr is not set")
	}
	if len(c.Peers) == 0 {
		if c.ID == "" {
			c.ID = "1"
		}
	} else {
		if c.ID == "" {
			return errors.New("controlplane: ID must name this server's entry in the peers")
		}
		found := false
		for _, p := range c.Peers {
			found = found || p.ID == c.ID
		}
		if !found {
			return fmt.Errorf("controlplane: ID %q is not among the peers %v", c.ID, c.Peers)
		}
	}
	if c.Lease < 0 {
		return fmt.Errorf("controlplane: Lease %v must be positive", c.Lease)
	}
	if c.Lease == 0 {
		c.Lease = defaultLease
	}
	if c.TickInterval <= 0 {
		c.TickInterval = c.Lease / 4
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLeaseTimeout <= 0 {
		c.LeaderLeaseTimeout = DefaultLeaderLeaseTimeout
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		return fmt.Errorf("controlplane: LeaderLeaseTimeout %v must not exceed HeartbeatTimeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
