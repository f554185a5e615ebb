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
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
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
