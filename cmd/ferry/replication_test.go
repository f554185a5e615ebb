package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
)

// replGroup is a name server running the control plane (a single voter)
// and a broker group of three replicas, each a process.
type replGroup struct {
	t       *testing.T
	ns      string
	brokers map[int64]*replBroker
}

type replBroker struct {
	id    int64
	args  []string
	p     *proc
	http  string
	alive bool
}

// startReplGroup starts the group; a "--cluster-secret" in extra goes to
// the name server too.
func startReplGroup(t *testing.T, extra ...string) *replGroup {
	dir := t.TempDir()
	ctl := freePorts(t, 1)[0]
	cfg := writeConfig(t, fmt.Sprintf("[namesrv]\ncontroller_port = %d\ncontroller_dir = %q\ncontroller_lease = \"1s\"\n", ctl, filepath.Join(dir, "controller")))
	nsArgs := []string{"namesrv", "--config", cfg, "--namesrv-port", "0", "--host", "127.0.0.1"}
	if i := slices.Index(extra, "--cluster-secret"); i >= 0 {
		nsArgs = append(nsArgs, extra[i:i+2]...)
	}
	p := startProc(t, nsArgs...)
	g := &replGroup{t: t, ns: "127.0.0.1:" + fmt.Sprint(p.waitLog(t, "name server ready")["port"]), brokers: map[int64]*replBroker{}}
	for id := int64(1); id <= 3; id++ {
		ports := freePorts(t, 3)
		b := &replBroker{id: id, http: fmt.Sprintf("127.0.0.1:%d", ports[1]), args: append([]string{"broker", "run",
			"--namesrv", g.ns, "--data-dir", filepath.Join(dir, fmt.Sprint("b", id)), "--host", "127.0.0.1",
			"--advertise-host", "127.0.0.1", "--broker-port", fmt.Sprint(ports[0]), "--http-port", fmt.Sprint(ports[1]),
			"--replication-port", fmt.Sprint(ports[2]), "--replica-id", fmt.Sprint(id)}, extra...)}
		g.brokers[id] = b
		g.start(id)
	}
	return g
}

func (g *replGroup) start(id int64) {
	b := g.brokers[id]
	b.p = startProc(g.t, b.args...)
	b.p.waitLog(g.t, "broker ready")
	b.alive = true
}

func (g *replGroup) status(id int64) (protocol.BrokerRuntime, bool) {
	var ri protocol.BrokerRuntime
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + g.brokers[id].http + "/v1/broker")
	if err != nil {
		return ri, false
	}
	defer resp.Body.Close()
	return ri, json.NewDecoder(resp.Body).Decode(&ri) == nil
}

// master waits for a live replica that is master with all of want in
// its in-sync set, and returns its id.
func (g *replGroup) master(within time.Duration, want int) int64 {
	var id int64
	pollUntil(g.t, within, "a master", func() bool {
		for i, b := range g.brokers {
			if !b.alive {
				continue
			}
			if ri, ok := g.status(i); ok && ri.Replication.Role == "master" && ri.Writable && len(ri.Replication.InSync) >= want {
				id = i
				return true
			}
		}
		return false
	})
	return id
}

// send sends bodies with `ferry msg send` and returns whether it exited 0.
func (g *replGroup) send(topic string, bodies ...string) bool {
	_, _, code := ferry(g.t, strings.Join(bodies, "\n")+"\n", "msg", "send", "--namesrv", g.ns, "--topic", topic)
	return code == 0
}

// consume reads up to max messages of group from its committed offsets.
func (g *replGroup) consume(topic, group string, max int) []string {
	out, errOut, code := ferry(g.t, "", "msg", "consume", "--namesrv", g.ns, "--topic", topic, "--group", group,
		"--from-beginning", "--max", fmt.Sprint(max), "--timeout", "10s", "-o", "json")
	if code != 0 && code != 1 {
		g.t.Fatalf("consume: exit %d: %s", code, errOut)
	}
	var bodies []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m struct {
			Body string `json:"body"`
		}
		if line != "" && json.Unmarshal([]byte(line), &m) == nil {
			bodies = append(bodies, m.Body)
		}
	}
	return bodies
}

// TestReplicationFailover: a group of three replicas with acks=all; kill -9
// of the master in cycles. Every acknowledged message is readable from the
// new master, a consumer group resumes without rewinding past its commit,
// the old master rejoins as a slave, and each failover (kill → first
// acknowledged send on the new master) is measured.
func TestReplicationFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes and kills masters")
	}
	g := startReplGroup(t)
	m := g.master(30*time.Second, 3)
	topic := "repl-failover"
	var acked []string
	seq := 0
	batch := func() {
		var bodies []string
		for range 20 {
			seq++
			bodies = append(bodies, fmt.Sprintf("m%05d", seq))
		}
		if g.send(topic, bodies...) {
			acked = append(acked, bodies...)
		}
	}
	batch()
	if len(acked) != 20 {
		t.Fatal("the first acks=all sends failed")
	}
	if first := g.consume(topic, "repl-first", len(acked)); len(first) != len(acked) {
		t.Fatalf("consumed %d of %d before any failover", len(first), len(acked))
	}
	var failovers []time.Duration
	const cycles = 20
	for c := range cycles {
		batch()
		g.brokers[m].p.kill()
		g.brokers[m].alive = false
		killed := time.Now()
		old := m
		pollUntil(t, 30*time.Second, "an acknowledged send on a new master", func() bool {
			seq++
			body := fmt.Sprintf("m%05d", seq)
			if g.send(topic, body) {
				acked = append(acked, body)
				return true
			}
			return false
		})
		failovers = append(failovers, time.Since(killed))
		m = g.master(10*time.Second, 1)
		if m == old {
			t.Fatalf("cycle %d: the killed replica %d is still master", c, old)
		}
		// The old master comes back and rejoins as a slave, caught up.
		g.start(old)
		m = g.master(30*time.Second, 3)
		ri, _ := g.status(old)
		if ri.Replication.Role != "slave" || ri.Replication.MasterAddr == "" {
			t.Fatalf("cycle %d: the old master rejoined as %+v", c, ri.Replication)
		}
	}
	// A fresh group reads the topic from the beginning on the last
	// master. (That a group resumes at its commit after a failover needs
	// its offsets replicated in the log, which this check leaves out.)
	got := g.consume(topic, "repl-all", len(acked))
	for _, body := range acked {
		if !slices.Contains(got, body) {
			t.Fatalf("acknowledged message %s not read back (read %d, acknowledged %d)", body, len(got), len(acked))
		}
	}
	sorted := slices.Clone(failovers)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	t.Logf("failover (kill -9 → first acknowledged send) over %d cycles: min %v, median %v, max %v; all %v",
		len(sorted), sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], failovers)
}

// TestReplicationMinInSync: with min_insync_replicas 3, acks=all sends are
// refused with a clear error once a slave is killed and has left the
// in-sync set, and accepted again when it is back in. The group runs with
// a cluster secret, so its replication connections are authenticated.
func TestReplicationMinInSync(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startReplGroup(t, "--min-insync-replicas", "3", "--cluster-secret", "0123456789abcdef-repl")
	m := g.master(30*time.Second, 3)
	if !g.send("repl-min", "a") {
		t.Fatal("send with the whole set in sync failed")
	}
	var slave int64
	for id := range g.brokers {
		if id != m {
			slave = id
			break
		}
	}
	g.brokers[slave].p.kill()
	g.brokers[slave].alive = false
	pollUntil(t, 30*time.Second, "the in-sync set to shrink", func() bool {
		ri, ok := g.status(m)
		return ok && len(ri.Replication.InSync) == 2
	})
	_, errOut, code := ferry(t, "b\n", "msg", "send", "--namesrv", g.ns, "--topic", "repl-min")
	if code == 0 || !strings.Contains(errOut, "min_insync_replicas") {
		t.Fatalf("send below min_insync_replicas: exit %d, %s", code, errOut)
	}
	g.start(slave)
	g.master(30*time.Second, 3)
	if !g.send("repl-min", "c") {
		t.Fatal("send after the slave caught up failed")
	}
}

// TestReplicationCommitPoint: with acks=1 a send is answered after the
// master's write, but consumers see it only once every in-sync replica
// has it: with both slaves killed (still in the set until replica_lag_max)
// it stays invisible, and appears when the set shrinks to the master.
func TestReplicationCommitPoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startReplGroup(t, "--acks", "1")
	m := g.master(30*time.Second, 3)
	if !g.send("repl-commit", "before") {
		t.Fatal("send failed")
	}
	// acks=1 answered before the slaves had it: wait until they all do,
	// or killing them would leave "before" past the commit point too.
	pollUntil(t, 10*time.Second, "the commit point to reach the log's end", func() bool {
		ri, ok := g.status(m)
		return ok && ri.Replication.CommitOffset == ri.Replication.MaxOffset
	})
	for id, b := range g.brokers {
		if id != m {
			b.p.kill()
			b.alive = false
		}
	}
	if !g.send("repl-commit", "after") {
		t.Fatal("acks=1 send with the slaves down failed")
	}
	ri, _ := g.status(m)
	if len(ri.Replication.InSync) != 3 {
		t.Skipf("the set shrank before the check (in sync %v); nothing to observe", ri.Replication.InSync)
	}
	if ri.Replication.CommitOffset >= ri.Replication.MaxOffset {
		t.Fatalf("commit offset %d reached the end %d with two in-sync slaves down", ri.Replication.CommitOffset, ri.Replication.MaxOffset)
	}
	out, _, _ := ferry(t, "", "msg", "consume", "--namesrv", g.ns, "--topic", "repl-commit", "--from-beginning",
		"--max", "2", "--timeout", "5s", "-o", "json")
	if strings.Contains(out, `"after"`) || !strings.Contains(out, `"before"`) {
		t.Fatalf("before the in-sync set shrank consumers saw:\n%s", out)
	}
	pollUntil(t, 20*time.Second, "the message once the set shrank to the master", func() bool {
		out, _, _ := ferry(t, "", "msg", "consume", "--namesrv", g.ns, "--topic", "repl-commit", "--from-beginning",
			"--max", "2", "--timeout", "5s", "-o", "json")
		return strings.Contains(out, `"after"`)
	})
}

// TestReplicationClusterListAndCatchUp: a slave whose disk is wiped
// rejoins and catches up from the master's oldest segment, logging its
// progress from start to end; `ferry cluster list` then shows the group's
// master, slaves, epoch, in-sync set and each slave's lag (table and
// JSON), and GET /v1/cluster carries each broker's replication status
// with the same lag.
func TestReplicationClusterListAndCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startReplGroup(t)
	m := g.master(30*time.Second, 3)
	var wiped int64
	for id := range g.brokers {
		if id != m {
			wiped = id
			break
		}
	}
	g.brokers[wiped].p.kill()
	g.brokers[wiped].alive = false
	pollUntil(t, 30*time.Second, "the in-sync set to shrink", func() bool {
		ri, ok := g.status(m)
		return ok && len(ri.Replication.InSync) == 2
	})
	body := strings.Repeat("x", 4000)
	lines := make([]string, 500)
	for i := range lines {
		lines[i] = fmt.Sprintf("%04d%s", i, body)
	}
	if !g.send("catch-up", lines...) {
		t.Fatal("send with two replicas in sync failed")
	}
	args := g.brokers[wiped].args
	dataDir := args[slices.Index(args, "--data-dir")+1]
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	b := g.brokers[wiped]
	b.p = startProc(t, b.args...)
	want := map[string]bool{"broker ready": false, "replication: catching up with the master": false, "replication: caught up with the master": false}
	deadline := time.After(60 * time.Second)
	for slices.Contains(slices.Collect(maps.Values(want)), false) {
		select {
		case line, ok := <-b.p.logs:
			if !ok {
				t.Fatal("the wiped slave exited")
			}
			msg, _ := line["message"].(string)
			if _, ok := want[msg]; ok {
				want[msg] = true
			}
			if msg == "replication: catching up with the master" {
				// The line may come after the first frames have landed, so
				// it is allowed to miss part of the 2 MB, not most of it.
				if rem, _ := line["remaining_bytes"].(float64); rem < 1e6 {
					t.Fatalf("catch-up starts %v bytes behind, want most of the 2 MB sent meanwhile", rem)
				}
			}
		case <-deadline:
			t.Fatalf("log lines seen: %v", want)
		}
	}
	b.alive = true
	m = g.master(30*time.Second, 3)

	out, errOut, code := ferry(t, "", "cluster", "list", "--interval", "0", "-o", "json", "--namesrv", g.ns)
	if code != 0 {
		t.Fatalf("cluster list: exit %d: %s", code, errOut)
	}
	var doc struct {
		Brokers []struct {
			BrokerID    int64    `json:"broker_id"`
			Role        string   `json:"role"`
			Epoch       *int64   `json:"epoch"`
			InSync      []int64  `json:"in_sync"`
			LagBytes    *int64   `json:"lag_bytes"`
			LagSeconds  *float64 `json:"lag_seconds"`
			Replication *protocol.ReplicationStatus
		} `json:"brokers"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	slaves := 0
	for _, br := range doc.Brokers {
		if br.Epoch == nil || *br.Epoch < 1 || len(br.InSync) != 3 || br.Replication == nil {
			t.Fatalf("broker %d: %s", br.BrokerID, out)
		}
		switch br.Role {
		case "master":
			if br.LagBytes != nil || len(br.Replication.Replicas) != 2 {
				t.Fatalf("master: %s", out)
			}
		case "slave":
			slaves++
			if br.LagBytes == nil || br.LagSeconds == nil || *br.LagBytes < 0 || br.BrokerID != br.Replication.ReplicaID {
				t.Fatalf("slave %d: %s", br.BrokerID, out)
			}
		}
	}
	if len(doc.Brokers) != 3 || slaves != 2 {
		t.Fatalf("want a master and two slaves: %s", out)
	}
	table, _, _ := ferry(t, "", "cluster", "list", "--interval", "0", "--namesrv", g.ns)
	rows := strings.Split(strings.TrimSpace(table), "\n")
	if len(rows) != 4 || !strings.Contains(rows[0], "EPOCH  IN-SYNC  LAG-BYTES  LAG-S") {
		t.Fatalf("table:\n%s", table)
	}
	for _, row := range rows[1:] {
		f := strings.Fields(row)
		if (f[4] == "slave") == (f[7] == "-") || (f[4] == "slave") == (f[8] == "-") {
			t.Fatalf("row %q: lag columns", row)
		}
	}

	// GET /v1/cluster carries the same through each broker's replication.
	resp, err := http.Get("http://" + g.brokers[m].http + "/v1/cluster")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cl struct {
		Brokers []struct {
			Role        string                     `json:"role"`
			Replication protocol.ReplicationStatus `json:"replication"`
		} `json:"brokers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cl); err != nil {
		t.Fatal(err)
	}
	if len(cl.Brokers) != 3 {
		t.Fatalf("/v1/cluster lists %d brokers", len(cl.Brokers))
	}
	for _, br := range cl.Brokers {
		switch br.Replication.Role {
		case "master":
			if len(br.Replication.Replicas) != 2 || len(br.Replication.InSync) != 3 {
				t.Fatalf("/v1/cluster master: %+v", br.Replication)
			}
		case "slave":
			if br.Replication.MasterEndOffset <= 0 || br.Replication.MasterAddr == "" {
				t.Fatalf("/v1/cluster slave: %+v", br.Replication)
			}
		default:
			t.Fatalf("/v1/cluster role %q", br.Replication.Role)
		}
	}
}
