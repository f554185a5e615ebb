package broker

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestReplicationConfig: the replication keys are validated with errors
// that name them, and the ack mode defaults to all with replication on.
func TestReplicationConfig(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.NamesrvAddrs = []string{"127.0.0.1:9876"}
		return c
	}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"replica id 0", func(c *Config) { c.ReplicationPort = 10912 }, "replica_id 0"},
		{"bad port", func(c *Config) { c.ReplicationPort = 70000; c.ReplicaID = 1 }, "replication_port 70000"},
		{"bad acks", func(c *Config) { c.Acks = "2" }, `acks "2" must be 0, 1 or all`},
		{"bad topic acks", func(c *Config) { c.TopicAcks = map[string]string{"t": "most"} }, `topic_acks["t"]`},
		{"bad min in sync", func(c *Config) { c.MinInSyncReplicas = -1 }, "min_insync_replicas -1"},
		{"bad lag", func(c *Config) { c.ReplicaLagMax = -1 }, "replica_lag_max"},
		{"advertise without port", func(c *Config) { c.ReplicationAdvertise = "127.0.0.1" }, `replication_advertise "127.0.0.1"`},
		{"advertise port 0", func(c *Config) { c.ReplicationAdvertise = "127.0.0.1:0" }, `replication_advertise "127.0.0.1:0"`},
		{"advertise name", func(c *Config) { c.ReplicationAdvertise = "replica-1:10912" }, "must be ip:port"},
	} {
		c := base()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	c := base()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.AcksFor("t") != AcksLeader {
		t.Errorf("standalone default acks %q", c.AcksFor("t"))
	}
	c.ReplicationPort, c.ReplicaID = 10912, 2
	c.ReplicationAdvertise = "127.0.0.1:20912"
	c.TopicAcks = map[string]string{"logs": AcksLeader}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.AcksFor("t") != AcksAll || c.AcksFor("logs") != AcksLeader {
		t.Errorf("replicated acks: t %q, logs %q", c.AcksFor("t"), c.AcksFor("logs"))
	}
}

// TestReplicationAuth: with a cluster secret a slave that knows it is let
// through, one that does not is refused.
func TestReplicationAuth(t *testing.T) {
	for _, tc := range []struct {
		slave string
		ok    bool
	}{{"0123456789abcdef", true}, {"fedcba9876543210", false}} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan error, 1)
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				res <- err
				return
			}
			defer conn.Close()
			res <- replAuthServe(conn, "0123456789abcdef")
		}()
		conn, err := replAuthDial(context.Background(), ln.Addr().String(), tc.slave)
		if err != nil {
			t.Fatal(err)
		}
		err = <-res
		conn.Close()
		ln.Close()
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, errReplAuth)) {
			t.Fatalf("slave secret %q: master says %v", tc.slave, err)
		}
	}
}

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReplicationCatchUpProgress: a slave out of the in-sync set that
// lacks data reports its catch-up — log lines with bytes done and total
// and the rate, the status's catch_up and lag, and the remaining-bytes
// gauge — until it is in the set again.
func TestReplicationCatchUpProgress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
	cfg.NamesrvAddrs = []string{"127.0.0.1:9876"}
	cfg.ReplicationPort, cfg.ReplicaID = 10912, 2
	var logs lockedBuffer
	b, err := New(cfg, WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	r := b.repl
	r.mu.Lock()
	r.role, r.inSync = RoleSlave, []int64{1}
	r.mu.Unlock()
	gauge := func() float64 {
		mfs, err := b.metrics.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "ferry_replication_catchup_remaining_bytes" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no ferry_replication_catchup_remaining_bytes")
		return 0
	}
	written := b.clog.WrittenOffset()
	t0 := time.Now()
	r.noteMasterEnd(written+10<<20, t0)
	st := r.Status()
	if st.CatchUp == nil || st.CatchUp.RemainingBytes != 10<<20 || st.CatchUp.TotalBytes != 10<<20 || st.LagBytes != 10<<20 {
		t.Fatalf("status while catching up: %+v %+v", st, st.CatchUp)
	}
	if g := gauge(); g != 10<<20 {
		t.Fatalf("remaining bytes gauge %v", g)
	}
	if !strings.Contains(logs.String(), "catching up with the master") {
		t.Fatalf("no start line:\n%s", logs.String())
	}
	// A progress line every catchUpLogEvery, not more often.
	r.noteMasterEnd(written+10<<20, t0.Add(time.Second))
	if strings.Contains(logs.String(), "catching up: ") {
		t.Fatalf("progress logged after a second:\n%s", logs.String())
	}
	r.noteMasterEnd(written+10<<20, t0.Add(catchUpLogEvery))
	if out := logs.String(); !strings.Contains(out, `"done_bytes":0,"total_bytes":10485760,"remaining_bytes":10485760`) ||
		!strings.Contains(out, "rate_bytes_per_sec") {
		t.Fatalf("progress line:\n%s", out)
	}
	// In the set again while 10 MiB behind: still catching up.
	r.mu.Lock()
	r.inSync = []int64{1, 2}
	r.mu.Unlock()
	r.noteMasterEnd(written+10<<20, t0.Add(2*catchUpLogEvery))
	if st := r.Status(); st.CatchUp == nil {
		t.Fatal("the catch-up ended 10 MiB behind")
	}
	// In the set and less than catchUpMinBytes behind: over.
	r.mu.Lock()
	r.masterEnd = written + catchUpMinBytes/2
	r.mu.Unlock()
	r.noteMasterEnd(written+catchUpMinBytes/2, t0.Add(3*catchUpLogEvery))
	if st := r.Status(); st.CatchUp != nil || gauge() != 0 {
		t.Fatalf("after joining the set: %+v", st.CatchUp)
	}
	if !strings.Contains(logs.String(), "caught up with the master") {
		t.Fatalf("no end line:\n%s", logs.String())
	}
}
