package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Fault tests of a replicated broker group: a name server running the
// control plane and three replicas, each a process, with a fault-injecting
// TCP proxy (toxiproxy, in this process) on every link between replicas
// and between a replica and the control plane.

// faultLease is the control plane's lease in these tests.
const faultLease = time.Second

// faultGroup is the name server (a single voter) and the replicas of
// broker-a. Each replica reaches the name server through its own proxy
// (toNS) and is reached by the others through another (repl, which it
// advertises with --replication-advertise), so a test can cut a replica
// off from its peers and the control plane while clients still reach its
// broker port directly.
type faultGroup struct {
	t    *testing.T
	dir  string
	cfg  string
	ns   *server
	tp   *toxiproxy.ApiServer
	reps map[int64]*faultReplica
	rc   *remoting.Client
}

type faultReplica struct {
	id         int64
	dataDir    string
	args       []string
	srv        *server
	brokerAddr string
	httpAddr   string
	toNS       *toxiproxy.Proxy // this replica → the name server
	repl       *toxiproxy.Proxy // the other replicas → this one's replication port
	alive      bool
}

// startFaultGroup starts the name server and three replicas with the
// broker settings in brokerTOML (a [broker] section's lines).
func startFaultGroup(t *testing.T, brokerTOML string) *faultGroup {
	dir := t.TempDir()
	g := &faultGroup{t: t, dir: dir, reps: map[int64]*faultReplica{},
		tp: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop()),
		rc: remoting.NewClient(remoting.ClientConfig{})}
	t.Cleanup(func() { g.rc.Close() })
	nsCfg := filepath.Join(dir, "namesrv.toml")
	if err := os.WriteFile(nsCfg, fmt.Appendf(nil, "[namesrv]\ncontroller_port = %d\ncontroller_dir = %q\ncontroller_lease = %q\n",
		freePort(t), filepath.Join(dir, "controller"), faultLease.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	g.ns = startNamesrv(t, "--config", nsCfg)
	g.cfg = filepath.Join(dir, "broker.toml")
	if err := os.WriteFile(g.cfg, []byte("[broker]\n"+brokerTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 3; id++ {
		bp, hp, rp := freePort(t), freePort(t), freePort(t)
		r := &faultReplica{id: id, dataDir: filepath.Join(dir, fmt.Sprint("b", id)),
			brokerAddr: fmt.Sprintf("127.0.0.1:%d", bp), httpAddr: fmt.Sprintf("127.0.0.1:%d", hp),
			toNS: g.proxy(fmt.Sprint("ns-", id), g.ns.namesrv),
			repl: g.proxy(fmt.Sprint("repl-", id), fmt.Sprintf("127.0.0.1:%d", rp))}
		r.args = []string{"broker", "run", "--config", g.cfg, "--namesrv", r.toNS.Listen, "--data-dir", r.dataDir,
			"--broker-name", "broker-a", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1",
			"--broker-port", fmt.Sprint(bp), "--http-port", fmt.Sprint(hp), "--replication-port", fmt.Sprint(rp),
			"--replication-advertise", r.repl.Listen, "--replica-id", fmt.Sprint(id), "--log-format", "json"}
		g.reps[id] = r
		g.start(id)
	}
	return g
}

// proxy starts a proxy to upstream on a free loopback port.
func (g *faultGroup) proxy(name, upstream string) *toxiproxy.Proxy {
	p := toxiproxy.NewProxy(g.tp, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(p.Stop)
	return p
}

func (g *faultGroup) start(id int64) {
	r := g.reps[id]
	r.srv = startFerry(g.t, r.args)
	r.alive = true
}

// kill stops replica id with SIGKILL and waits until it is gone.
// others is every replica but id, in id order.
func (g *faultGroup) others(id int64) []int64 {
	var out []int64
	for r := range g.reps {
		if r != id {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func (g *faultGroup) kill(id int64) {
	r := g.reps[id]
	if err := r.srv.cmd.Process.Kill(); err != nil {
		g.t.Fatal(err)
	}
	<-r.srv.exited
	r.alive = false
}

// isolate cuts replica id off from the control plane and the other
// replicas: both its proxies stop, closing their connections and refusing
// new ones. Its broker port stays reachable.
func (g *faultGroup) isolate(id int64) {
	g.reps[id].toNS.Stop()
	g.reps[id].repl.Stop()
}

// heal undoes isolate (on the same addresses).
func (g *faultGroup) heal(id int64) {
	for _, p := range []*toxiproxy.Proxy{g.reps[id].toNS, g.reps[id].repl} {
		if err := p.Start(); err != nil {
			g.t.Fatalf("restart proxy %s on %s: %v", p.Name, p.Listen, err)
		}
	}
}

// status is replica id's GET /v1/broker (false when it does not answer).
func (g *faultGroup) status(id int64) (protocol.BrokerRuntime, bool) {
	var ri protocol.BrokerRuntime
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + g.reps[id].httpAddr + "/v1/broker")
	if err != nil {
		return ri, false
	}
	defer resp.Body.Close()
	return ri, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&ri) == nil
}

// master waits for a live replica among ids (all when none are given)
// that is a writable master with want replicas in its in-sync set (any
// number when want is 0).
func (g *faultGroup) master(within time.Duration, want int, ids ...int64) int64 {
	if len(ids) == 0 {
		ids = []int64{1, 2, 3}
	}
	var id int64
	waitFor(g.t, within, fmt.Sprintf("a master among %v with %d in sync", ids, want), func() bool {
		for _, i := range ids {
			if !g.reps[i].alive {
				continue
			}
			if ri, ok := g.status(i); ok && ri.Replication.Role == "master" && ri.Writable && (want == 0 || len(ri.Replication.InSync) == want) {
				id = i
				return true
			}
		}
		return false
	})
	return id
}

// watchMaster polls replicas ids every 20 ms, from now until the test
// ends, and sends how long after since the first of them was a writable
// master.
func (g *faultGroup) watchMaster(ids []int64, since time.Time) <-chan time.Duration {
	elected := make(chan time.Duration, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	g.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, id := range ids {
				if ri, ok := g.status(id); ok && ri.Replication.Role == "master" && ri.Writable {
					elected <- time.Since(since)
					return
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return elected
}

// inSync waits until master m's in-sync set has n members and returns it.
func (g *faultGroup) inSync(m int64, n int, within time.Duration) []int64 {
	var set []int64
	waitFor(g.t, within, fmt.Sprintf("replica %d's in-sync set to have %d members", m, n), func() bool {
		ri, ok := g.status(m)
		set = ri.Replication.InSync
		return ok && ri.Replication.Role == "master" && len(set) == n
	})
	return set
}

// listedInSync is the in-sync set `ferry cluster list -o json` shows for
// broker id 0 of broker-a (nil when the list fails or has none).
func (g *faultGroup) listedInSync() []int64 {
	out, err := exec.Command(ferryBin, "cluster", "list", "--namesrv", g.ns.namesrv, "--interval", "0", "-o", "json").Output()
	if err != nil {
		return nil
	}
	var list struct {
		Brokers []struct {
			BrokerName string  `json:"broker_name"`
			BrokerID   int64   `json:"broker_id"`
			InSync     []int64 `json:"in_sync"`
		} `json:"brokers"`
	}
	if json.Unmarshal(out, &list) != nil {
		return nil
	}
	for _, b := range list.Brokers {
		if b.BrokerName == "broker-a" && b.BrokerID == 0 {
			return b.InSync
		}
	}
	return nil
}

// listsInSync waits until `ferry cluster list` shows the in-sync set want.
func (g *faultGroup) listsInSync(want []int64) {
	g.t.Helper()
	want = slices.Sorted(slices.Values(want))
	var got []int64
	waitFor(g.t, 10*time.Second, fmt.Sprintf("ferry cluster list to show the in-sync set %v", want), func() bool {
		got = g.listedInSync()
		return slices.Equal(slices.Sorted(slices.Values(got)), want)
	})
}

// send sends body to queue 0 of topic on the broker at addr over the
// remoting protocol and returns the answer's code and remark (err when
// there was no answer within timeout).
func (g *faultGroup) send(addr, topic, body string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := g.rc.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
		"producerGroup": "fault-pg", "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "1",
		"queueId": "0", "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
		"flag": "0", "properties": string(protocol.EncodeProperties(map[string]string{"KEYS": body})),
		"reconsumeTimes": "0", "unitMode": "false", "batch": "false",
	}, []byte(body)))
	if err != nil {
		return 0, "", err
	}
	return int(resp.Code), resp.Remark, nil
}

// httpSend produces body to queue 0 of topic through replica id's HTTP
// API and returns the status and the answer.
func (g *faultGroup) httpSend(id int64, topic, body string) (int, string) {
	c := http.Client{Timeout: 40 * time.Second}
	req, err := json.Marshal(map[string]any{"messages": []map[string]any{{"body": body, "queue_id": 0}}})
	if err != nil {
		g.t.Fatal(err)
	}
	resp, err := c.Post("http://"+g.reps[id].httpAddr+"/v1/topics/"+topic+"/messages", "application/json", bytes.NewReader(req))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// mustSend sends body to replica id and fails the test unless it is
// acknowledged.
func (g *faultGroup) mustSend(id int64, topic, body string) {
	g.t.Helper()
	code, remark, err := g.send(g.reps[id].brokerAddr, topic, body, 15*time.Second)
	if err != nil || code != protocol.RespSuccess {
		g.t.Fatalf("send %s to replica %d: code %d %q, %v", body, id, code, remark, err)
	}
}

// createTopic creates topic with one queue on master m.
func (g *faultGroup) createTopic(m int64, topic string) {
	g.reps[m].srv.call(g.t, "POST", "/v1/topics", map[string]any{"name": topic, "read_queues": 1, "write_queues": 1}, 201, nil)
}

// read returns the bodies of queue 0 of topic on replica id, in order
// (nil when it does not answer, or does not know the topic yet).
func (g *faultGroup) read(id int64, topic string) []string {
	c := http.Client{Timeout: 10 * time.Second}
	var bodies []string
	for off := int64(0); ; {
		resp, err := c.Get(fmt.Sprintf("http://%s/v1/topics/%s/queues/0/messages?offset=%d&max=1000", g.reps[id].httpAddr, topic, off))
		if err != nil {
			return nil
		}
		var qr protocol.HTTPQueueRead
		err = json.NewDecoder(resp.Body).Decode(&qr)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil
		}
		if len(qr.Messages) == 0 {
			return bodies
		}
		for _, m := range qr.Messages {
			bodies = append(bodies, m.Body)
		}
		off = qr.NextOffset
	}
}

// logged returns the JSON log lines of replica id with message msg.
func (g *faultGroup) logged(id int64, msg string) []map[string]any {
	s := g.reps[id].srv
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range s.log {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestReplicationPartitionedMaster: the master is cut off from its slaves
// and from the control plane while a client still reaches it. It
// acknowledges none of the sends that arrive after the cut and refuses
// them with a clear error once its lease has run out; the other side
// elects a new master that takes writes; when the partition heals the old
// master rejoins as a slave and truncates the tail it wrote alone; every
// acknowledged message is on the new master exactly once and nothing the
// isolated master took is.
func TestReplicationPartitionedMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startFaultGroup(t, "replica_lag_max = \"2s\"\n")
	m := g.master(30*time.Second, 3)
	const topic = "partition"
	g.createTopic(m, topic)
	var acked []string
	for i := range 30 {
		body := fmt.Sprintf("before-%03d", i)
		g.mustSend(m, topic, body)
		acked = append(acked, body)
	}

	others := g.others(m)

	g.isolate(m)
	cut := time.Now()
	elected := g.watchMaster(others, cut)
	// A client keeps sending to the isolated master, a send every 50 ms,
	// each waiting up to 3 s for its answer, until one is refused on
	// arrival ("not master": the lease is over).
	type outcome struct {
		body     string
		at, done time.Time
		code     int
		remark   string
		err      error
	}
	var (
		mu       sync.Mutex
		outs     []outcome
		refused  = make(chan struct{})
		wg       sync.WaitGroup
		isolated = g.reps[m].brokerAddr
	)
	// And one through the HTTP API, which answers when the send is
	// replicated or fails.
	var httpStatus int
	var httpAnswer string
	wg.Go(func() { httpStatus, httpAnswer = g.httpSend(m, topic, "isolated-http") })
	tick := time.NewTicker(50 * time.Millisecond)
	deadline := time.After(10 * time.Second)
loop:
	for i := 0; ; i++ {
		body := fmt.Sprintf("isolated-%03d", i)
		at := time.Now()
		wg.Go(func() {
			code, remark, err := g.send(isolated, topic, body, 3*time.Second)
			mu.Lock()
			defer mu.Unlock()
			outs = append(outs, outcome{body, at, time.Now(), code, remark, err})
			if err == nil && strings.Contains(remark, "not master") {
				select {
				case <-refused:
				default:
					close(refused)
				}
			}
		})
		select {
		case <-refused:
			break loop
		case <-deadline:
			t.Fatal("the isolated master refused no send on arrival within 10 s of the cut")
		case <-tick.C:
		}
	}
	tick.Stop()
	wg.Wait()
	// Sends that arrived while the lease lasted wait for replicas that
	// never answer; when the lease lapses they are failed. Later ones are
	// refused on arrival. None is acknowledged, none is left unanswered.
	var lastAnswer, firstRefusal time.Duration
	parked := 0
	for _, o := range outs {
		switch {
		case o.err != nil:
			t.Fatalf("send %s to the isolated master, %v after the cut: no answer: %v", o.body, o.at.Sub(cut), o.err)
		case o.code == protocol.RespSuccess:
			t.Fatalf("the isolated master acknowledged %s, sent %v after the cut", o.body, o.at.Sub(cut))
		case strings.Contains(o.remark, "not master"):
			if d := o.at.Sub(cut); firstRefusal == 0 || d < firstRefusal {
				firstRefusal = d
			}
		case strings.Contains(o.remark, "lease") && strings.Contains(o.remark, "may or may not be kept"):
			parked++
		default:
			t.Fatalf("send %s to the isolated master: code %d %q, want a not-master or lease error", o.body, o.code, o.remark)
		}
		lastAnswer = max(lastAnswer, o.done.Sub(cut))
	}
	// The lease runs from the last heartbeat the control plane answered,
	// at most a lease before the cut; the pump fails parked sends within
	// a tick of its end.
	if firstRefusal > faultLease+500*time.Millisecond || lastAnswer > faultLease+500*time.Millisecond {
		t.Fatalf("the isolated master refused sends on arrival from %v after the cut and answered the last %v after it; its lease is %v",
			firstRefusal, lastAnswer, faultLease)
	}
	if httpStatus != http.StatusServiceUnavailable || !strings.Contains(httpAnswer, "may or may not be kept") {
		t.Fatalf("HTTP produce to the isolated master: %d %s", httpStatus, httpAnswer)
	}
	t.Logf("isolated master: %d sends, none acknowledged; %d failed when its lease lapsed, the rest refused on arrival from %v after the cut; last answer %v after the cut (lease %v)",
		len(outs), parked, firstRefusal, lastAnswer, faultLease)

	// The other side elects a new master, which takes acks=all writes
	// once the old master has left its in-sync set.
	var electedAfter time.Duration
	select {
	case electedAfter = <-elected:
	case <-time.After(15 * time.Second):
		t.Fatalf("no master among %v 15 s after the cut", others)
	}
	nm := g.master(5*time.Second, 0, others...)
	g.inSync(nm, 2, 15*time.Second)
	for i := range 30 {
		body := fmt.Sprintf("after-%03d", i)
		g.mustSend(nm, topic, body)
		acked = append(acked, body)
	}
	if ri, ok := g.status(m); !ok || ri.Writable {
		t.Fatalf("the isolated master still writable: %+v", ri)
	}
	t.Logf("replica %d elected master %v after the cut", nm, electedAfter)

	// Healed, the old master rejoins as a slave of the new one, cuts what
	// it wrote alone and catches up.
	g.heal(m)
	healed := time.Now()
	g.inSync(nm, 3, 30*time.Second)
	waitFor(t, 10*time.Second, "the old master to hold the new master's log", func() bool {
		old, ok1 := g.status(m)
		cur, ok2 := g.status(nm)
		return ok1 && ok2 && old.Replication.Role == "slave" && old.Replication.MaxOffset == cur.Replication.MaxOffset &&
			old.Replication.CommitOffset == cur.Replication.CommitOffset
	})
	cuts := g.logged(m, "replica: truncating what the master never had")
	if len(cuts) == 0 {
		t.Fatal("the old master rejoined without truncating the tail it wrote while isolated")
	}
	from, _ := cuts[0]["from"].(float64)
	to, _ := cuts[0]["to"].(float64)
	if to >= from {
		t.Fatalf("truncation %v", cuts[0])
	}
	t.Logf("old master back in sync %v after the heal; it cut its log from %d to %d", time.Since(healed), int64(from), int64(to))

	for _, id := range []int64{nm, m} {
		var got []string
		waitFor(t, 10*time.Second, fmt.Sprintf("replica %d to serve the topic", id), func() bool {
			got = g.read(id, topic)
			return len(got) >= len(acked)
		})
		count := map[string]int{}
		for _, b := range got {
			count[b]++
			if strings.HasPrefix(b, "isolated-") {
				t.Fatalf("replica %d holds %s, which only the isolated master took", id, b)
			}
		}
		for _, b := range acked {
			if count[b] != 1 {
				t.Fatalf("replica %d holds acknowledged %s %d times", id, b, count[b])
			}
		}
		if len(got) != len(acked) {
			t.Fatalf("replica %d holds %d messages, %d were acknowledged", id, len(got), len(acked))
		}
	}
}

// TestReplicationMasterCutFromControlPlane: only the master's link to the
// control plane is cut; its slaves still stream from it and a client still
// sends to it. It may acknowledge sends until its lease ends (its slaves
// have them), then refuses them; a slave is elected, the other follows
// it, and the old master rejoins as a slave when the link is back. Every
// message either master acknowledged is on the new master exactly once
// (the old master's lease ends before the control plane elects, so there
// are never two masters acknowledging at once), and no message is there
// twice.
func TestReplicationMasterCutFromControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startFaultGroup(t, "replica_lag_max = \"2s\"\n")
	m := g.master(30*time.Second, 3)
	const topic = "fenced"
	g.createTopic(m, topic)
	var acked []string
	for i := range 10 {
		body := fmt.Sprintf("before-%03d", i)
		g.mustSend(m, topic, body)
		acked = append(acked, body)
	}
	others := g.others(m)

	g.reps[m].toNS.Stop()
	cut := time.Now()
	elected := g.watchMaster(others, cut)
	// A client sends to the old master one message at a time until it is
	// refused on arrival.
	var (
		oldAcked, sent int
		lastAck        time.Duration
	)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the master cut from the control plane still took sends 10 s after the cut")
		}
		body := fmt.Sprintf("old-%03d", i)
		sent++
		code, remark, err := g.send(g.reps[m].brokerAddr, topic, body, 3*time.Second)
		if err != nil {
			t.Fatalf("send %s to the old master: no answer: %v", body, err)
		}
		if code == protocol.RespSuccess {
			acked = append(acked, body)
			oldAcked++
			lastAck = time.Since(cut)
			continue
		}
		if strings.Contains(remark, "not master") {
			break
		}
		if !strings.Contains(remark, "may or may not be kept") {
			t.Fatalf("send %s to the old master: code %d %q", body, code, remark)
		}
	}
	refusedAfter := time.Since(cut)
	var electedAfter time.Duration
	select {
	case electedAfter = <-elected:
	case <-time.After(15 * time.Second):
		t.Fatalf("no master among %v 15 s after the cut", others)
	}
	// Its lease ends before the control plane's: the last acknowledgement
	// came before the new master took writes.
	if lastAck >= electedAfter || lastAck > faultLease+300*time.Millisecond {
		t.Fatalf("the old master acknowledged a send %v after the cut, the new master took writes %v after it (lease %v)",
			lastAck, electedAfter, faultLease)
	}
	nm := g.master(5*time.Second, 0, others...)
	for i := range 20 {
		body := fmt.Sprintf("new-%03d", i)
		g.mustSend(nm, topic, body)
		acked = append(acked, body)
	}
	t.Logf("old master: %d sends, %d acknowledged after the cut (the last %v after it), refused from %v; replica %d master %v after the cut",
		sent, oldAcked, lastAck, refusedAfter, nm, electedAfter)

	if err := g.reps[m].toNS.Start(); err != nil {
		t.Fatal(err)
	}
	g.inSync(nm, 3, 30*time.Second)
	waitFor(t, 10*time.Second, "the old master to hold the new master's log", func() bool {
		old, ok1 := g.status(m)
		cur, ok2 := g.status(nm)
		return ok1 && ok2 && old.Replication.Role == "slave" && old.Replication.MaxOffset == cur.Replication.MaxOffset
	})
	// Unacknowledged sends may have been kept too, so a count can be met
	// before the last acknowledged message is served: wait for every one.
	var got []string
	count := map[string]int{}
	waitFor(t, 20*time.Second, "the new master to serve every acknowledged message", func() bool {
		got = g.read(nm, topic)
		clear(count)
		for _, b := range got {
			count[b]++
		}
		for _, b := range acked {
			if count[b] == 0 {
				return false
			}
		}
		return true
	})
	for b, n := range count {
		if n > 1 {
			t.Fatalf("%s is on the new master %d times", b, n)
		}
	}
}

// TestReplicationSlaveFaults (the in-sync set as GET /v1/broker and
// `ferry cluster list` show it): with min_insync_replicas 2, a slave killed
// and restarted leaves the in-sync set and rejoins it while acks=all sends
// keep being answered; a slave whose data directory is wiped rejoins and
// copies the master's log from its oldest offset; when the slaves lag
// behind a throttled link the set shrinks to the master and acks=all sends
// are refused with a clear error until the link is back and it grows.
func TestReplicationSlaveFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	g := startFaultGroup(t, "replica_lag_max = \"2s\"\nmin_insync_replicas = 2\ntopic_acks = { \"filler\" = \"1\" }\n")
	m := g.master(30*time.Second, 3)
	const topic = "slaves"
	g.createTopic(m, topic)
	g.createTopic(m, "filler")
	var acked []string
	send := func(body string) {
		t.Helper()
		g.mustSend(m, topic, body)
		acked = append(acked, body)
	}
	send("all-in-sync")
	var s1 int64
	for id := range g.reps {
		if id != m {
			s1 = id
			break
		}
	}

	// Killed: the set shrinks to two, still enough for acks=all.
	g.kill(s1)
	start := time.Now()
	set := g.inSync(m, 2, 20*time.Second)
	if slices.Contains(set, s1) {
		t.Fatalf("in-sync set %v after replica %d was killed", set, s1)
	}
	g.listsInSync(set)
	t.Logf("killed slave left the in-sync set after %v", time.Since(start))
	send("one-slave-down")
	if code, answer := g.httpSend(m, topic, "http-one-slave-down"); code != http.StatusOK {
		t.Fatalf("HTTP produce with two of three in sync: %d %s", code, answer)
	}
	acked = append(acked, "http-one-slave-down")
	g.start(s1)
	start = time.Now()
	g.inSync(m, 3, 30*time.Second)
	t.Logf("restarted slave back in the in-sync set after %v", time.Since(start))
	send("slave-restarted")

	// Wiped: it starts empty, copies the whole log and rejoins.
	g.kill(s1)
	g.inSync(m, 2, 20*time.Second)
	send("slave-wiped")
	if err := os.RemoveAll(g.reps[s1].dataDir); err != nil {
		t.Fatal(err)
	}
	g.start(s1)
	start = time.Now()
	g.inSync(m, 3, 30*time.Second)
	t.Logf("wiped slave back in the in-sync set after %v", time.Since(start))
	streams := g.logged(s1, "replica: streaming from the master")
	if len(streams) == 0 || streams[0]["offset"] != float64(0) {
		t.Fatalf("the wiped slave's first stream: %v", streams)
	}
	waitFor(t, 10*time.Second, "the wiped slave to serve every acknowledged message", func() bool {
		return slices.Equal(g.read(s1, topic), acked)
	})

	// Lagging: both slaves behind a link of 16 KB/s while 1 MiB is
	// written with acks=1; the set shrinks to the master alone, below
	// min_insync_replicas.
	if _, err := g.reps[m].repl.Toxics.AddToxicJson(strings.NewReader(
		`{"name":"slow","type":"bandwidth","stream":"downstream","attributes":{"rate":16}}`)); err != nil {
		t.Fatal(err)
	}
	fill := strings.Repeat("x", 4096)
	for i := range 256 {
		g.mustSend(m, "filler", fmt.Sprintf("%03d%s", i, fill))
	}
	start = time.Now()
	g.inSync(m, 1, 20*time.Second)
	t.Logf("throttled slaves left the in-sync set after %v", time.Since(start))
	g.listsInSync([]int64{m})
	code, remark, err := g.send(g.reps[m].brokerAddr, topic, "below-min", 10*time.Second)
	if err != nil || code == protocol.RespSuccess || !strings.Contains(remark, "min_insync_replicas") {
		t.Fatalf("acks=all send with one replica in sync: code %d %q, %v; want a min_insync_replicas refusal", code, remark, err)
	}
	t.Logf("refused: %s", remark)
	if code, answer := g.httpSend(m, topic, "http-below-min"); code != http.StatusServiceUnavailable || !strings.Contains(answer, "min_insync_replicas") {
		t.Fatalf("HTTP produce with one replica in sync: %d %s; want 503 and a min_insync_replicas refusal", code, answer)
	}
	if err := g.reps[m].repl.Toxics.RemoveToxic(context.Background(), "slow"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	g.inSync(m, 3, 30*time.Second)
	t.Logf("slaves back in the in-sync set %v after the link was", time.Since(start))
	g.listsInSync([]int64{1, 2, 3})
	send("link-back")
	for id := range g.reps {
		waitFor(t, 10*time.Second, fmt.Sprintf("replica %d to serve every acknowledged message", id), func() bool {
			return slices.Equal(g.read(id, topic), acked)
		})
	}
}
