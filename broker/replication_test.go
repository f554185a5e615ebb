package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
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
