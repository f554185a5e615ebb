package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/ferrymq/ferry/protocol"
)

// ---------------------------------------------------------------------------
// a replicated broker group

// replGroup is a name server running the control plane (a single voter,
// 1 s lease) and one broker group of replicas 1..n, each its own process.
// A replica keeps its ports and data directory across restarts.
type replGroup struct {
	t        *testing.T
	NameSrv  string
	replicas map[int64]*replicaProc
}

type replicaProc struct {
	id       int64
	args     []string
	Broker   string // remoting address
	HTTP     string
	p        *proc
	alive    bool
	restarts int
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startReplGroup starts the name server and n replicas with the extra
// broker flags, and waits for a master with all n in sync.
func startReplGroup(t *testing.T, n int, extra ...string) *replGroup {
	t.Helper()
	dir := t.TempDir()
	ctl := freePorts(t, 1)[0]
	cfg := filepath.Join(dir, "namesrv.toml")
	text := fmt.Sprintf("[namesrv]\ncontroller_port = %d\ncontroller_dir = %q\ncontroller_lease = \"1s\"\n",
		ctl, filepath.Join(dir, "controller"))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := startProc(t, "namesrv", "namesrv", "--config", cfg, "--namesrv-port", "0",
		"--host", "127.0.0.1", "--log-format", "json")
	g := &replGroup{t: t, replicas: map[int64]*replicaProc{}}
	g.NameSrv = "127.0.0.1:" + fieldString(t, ns.waitLog(t, "name server ready", startTimeout), "port")
	for id := int64(1); id <= int64(n); id++ {
		ports := freePorts(t, 3)
		r := &replicaProc{id: id,
			Broker: fmt.Sprintf("127.0.0.1:%d", ports[0]),
			HTTP:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
			args: append([]string{"broker", "run", "--namesrv", g.NameSrv,
				"--data-dir", filepath.Join(dir, fmt.Sprint("replica", id)),
				"--host", "127.0.0.1", "--advertise-host", "127.0.0.1",
				"--broker-port", strconv.Itoa(ports[0]), "--http-port", strconv.Itoa(ports[1]),
				"--replication-port", strconv.Itoa(ports[2]), "--replica-id", fmt.Sprint(id),
				"--log-format", "json"}, extra...)}
		g.replicas[id] = r
		g.start(id)
	}
	g.master(startTimeout, n)
	return g
}

// start starts replica id (again) and waits until it serves.
func (g *replGroup) start(id int64) {
	g.t.Helper()
	r := g.replicas[id]
	r.restarts++
	r.p = startProc(g.t, fmt.Sprintf("replica %d (start %d)", id, r.restarts), r.args...)
	r.p.waitLog(g.t, "broker ready", startTimeout)
	r.alive = true
}

// kill9 kills replica id with SIGKILL and waits until it is gone.
func (g *replGroup) kill9(id int64) {
	r := g.replicas[id]
	r.p.kill(g.t)
	r.alive = false
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

// getJSON GETs an HTTP API resource into out.
func getJSON(url string, out any) error {
	resp, err := statusClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// status is replica id's GET /v1/broker.
func (g *replGroup) status(id int64) (protocol.BrokerRuntime, bool) {
	var ri protocol.BrokerRuntime
	err := getJSON("http://"+g.replicas[id].HTTP+"/v1/broker", &ri)
	return ri, err == nil
}

// master waits for a live replica that is a writable master with at least
// want replicas in its in-sync set, and returns its id.
func (g *replGroup) master(within time.Duration, want int) int64 {
	g.t.Helper()
	var id int64
	waitFor(g.t, within, func() bool {
		id = g.findMaster(want)
		return id != 0
	}, "no writable master with %d replicas in sync", want)
	return id
}

// findMaster is master without waiting: 0 if there is none.
func (g *replGroup) findMaster(want int) int64 {
	for _, id := range g.ids() {
		if !g.replicas[id].alive {
			continue
		}
		ri, ok := g.status(id)
		if ok && ri.Replication.Role == "master" && ri.Writable && len(ri.Replication.InSync) >= want {
			return id
		}
	}
	return 0
}

func (g *replGroup) ids() []int64 {
	ids := make([]int64, 0, len(g.replicas))
	for id := range g.replicas {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// offsets is a group's committed offsets of topic on replica id, by queue
// (GET /v1/groups/{group}/offsets?topic=).
func (g *replGroup) offsets(id int64, group, topic string) (map[int32]int64, error) {
	var out protocol.HTTPOffsets
	if err := getJSON("http://"+g.replicas[id].HTTP+"/v1/groups/"+group+"/offsets?topic="+topic, &out); err != nil {
		return nil, err
	}
	m := make(map[int32]int64, len(out.Offsets))
	for _, o := range out.Offsets {
		m[o.QueueID] = o.Offset
	}
	return m, nil
}

// TestOfficialClientMasterKill: a broker group of three replicas with
// acks=all; official-client producers send continuously while the master
// is killed with SIGKILL at a random point, cycle after cycle, and the
// killed replica is started again to rejoin as a slave. Afterwards every
// acknowledged message is readable; in each cycle writes resume on the new
// master; and a push consumer group that commits offsets throughout never
// has its committed offset fall below what the brokers had confirmed
// before the kill, nor gets redelivered what lies below it.
//
// The official client refreshes its routes every 30 s and does not do so
// when a send fails, so one producer resumes only at its next refresh.
// The producers are started spread over that period, as a fleet of
// producer processes would be; the test measures when the first of them
// is acknowledged by the new master, and logs each one's resumption too.
func TestOfficialClientMasterKill(t *testing.T) {
	const (
		nProducers  = 6
		routePeriod = 30 * time.Second // the official client's route refresh
		queues      = 4
		sendEvery   = 20 * time.Millisecond
	)
	cycles := failoverCycles(t)
	seed := failoverSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	t.Logf("%d kill cycles, seed %d (FERRY_COMPAT_FAILOVER_SEED=%d repeats the kill points)", cycles, seed, seed)

	g := startReplGroup(t, 3, "--acks", "all")
	m := g.master(startTimeout, 3)
	topic, group := "failover-kill", "failover-committing"
	createTopic(t, g.NameSrv, []string{g.replicas[m].Broker}, topic, queues)

	// The committing group: its instance is replaced after every failover,
	// so each new one starts from the offsets the new master holds.
	deliveries := &deliveryLog{}
	instance := 0
	startGroup := func() *pushConsumer {
		instance++
		return startPushConsumer(t, g.NameSrv, group, topic, "*", deliveries.handler(instance), noFlowControl...)
	}
	committing := startGroup()

	acks := newAckLog(nProducers)
	acks.mark(time.Now())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopProducers := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	var seq atomic.Int64
	for i := range nProducers {
		if i > 0 {
			// Spread the producers' route refreshes over the period.
			select {
			case <-time.After(routePeriod / nProducers):
			case <-t.Context().Done():
				stopProducers()
				t.FailNow()
			}
		}
		p := newProducer(t, g.NameSrv, producer.WithSendMsgTimeout(3*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(sendEvery)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				body := fmt.Sprintf("p%d-%07d", i, seq.Add(1))
				started := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte(body)))
				cancel()
				if err == nil && res.Status == primitive.SendOK {
					acks.ok(i, started, body, storeHost(res))
				} else {
					acks.failed()
				}
			}
		}()
	}
	// Registered after the producers, so it runs before their shutdown.
	t.Cleanup(stopProducers)
	waitFor(t, startTimeout, func() bool {
		first, _ := acks.resumed()
		return !slices.Contains(first, 0)
	}, "every producer acknowledged once")

	// confirmed is, per queue, the highest committed offset the brokers
	// had confirmed before a kill. startedAt is confirmed as it was when
	// each consumer instance started.
	confirmed := map[int32]int64{}
	startedAt := map[int][]int64{}
	snap := func() []int64 {
		s := make([]int64, queues)
		for q := range s {
			s[q] = confirmed[int32(q)]
		}
		return s
	}
	startedAt[1] = snap()

	pause := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-t.Context().Done():
			t.FailNow()
		}
	}
	var elections, firstAck []time.Duration
	var killed time.Time
	var lostWindow int64 // offsets the killed master showed but had not replicated
	for c := 1; c <= cycles; c++ {
		// A random kill point. The master's own view of the group's
		// offsets is taken at least 1.5 s before the kill: an offset
		// carried by a pull is stored within offset_flush_interval (1 s)
		// and replicated at once, so by the kill it was confirmed. The
		// slaves' views, taken just before the kill, hold only what the
		// whole in-sync set has.
		d1 := time.Duration(rng.Int64N(int64(time.Second)))
		d2 := 1500*time.Millisecond + time.Duration(rng.Int64N(int64(time.Second)))
		pause(d1)
		masterView, err := g.offsets(m, group, topic)
		if err != nil {
			t.Fatalf("cycle %d: offsets on the master: %v", c, err)
		}
		pause(d2)
		for _, id := range g.ids() {
			if id == m {
				continue
			}
			v, err := g.offsets(id, group, topic)
			if err != nil {
				t.Fatalf("cycle %d: offsets on slave %d: %v", c, id, err)
			}
			raiseTo(confirmed, v)
		}
		raiseTo(confirmed, masterView)
		latest, _ := g.offsets(m, group, topic) // what the master shows at the kill, confirmed or not

		old := m
		g.kill9(old)
		killed = time.Now()
		acks.mark(killed)

		// The control plane elects a survivor.
		waitFor(t, 30*time.Second, func() bool {
			m = g.findMaster(1)
			return m != 0
		}, "cycle %d: a new master after killing replica %d", c, old)
		elections = append(elections, time.Since(killed))

		// Its committed offsets are not below what was confirmed (the
		// applier may still be finishing the records it was sent).
		var got map[int32]int64
		if !poll(5*time.Second, func() bool {
			got, err = g.offsets(m, group, topic)
			if err != nil {
				return false
			}
			for q, off := range confirmed {
				if got[q] < off {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("cycle %d: the group's offsets rewound on the new master %d: %v, confirmed before the kill %v (err %v)",
				c, m, got, confirmed, err)
		}
		var lost int64
		for q, off := range latest {
			if off > got[q] {
				lost += off - got[q]
			}
		}
		lostWindow += lost

		// The killed replica comes back as a slave; the group gets a new
		// instance, which reads its offsets from the new master.
		g.start(old)
		committing.stop()
		startedAt[instance+1] = snap()
		committing = startGroup()

		// Writes resume on the new master.
		var first time.Duration
		var by int
		waitFor(t, routePeriod+30*time.Second, func() bool {
			ds, _ := acks.resumed()
			first, by = earliest(ds)
			return by >= 0
		}, "cycle %d: an acknowledged send after the kill", c)
		if _, hosts := acks.resumed(); hosts[by] != g.replicas[m].Broker {
			t.Fatalf("cycle %d: the first send acknowledged after the kill was stored by %s, not by the new master %d (%s)",
				c, hosts[by], m, g.replicas[m].Broker)
		}
		firstAck = append(firstAck, first)
		m = g.master(startTimeout, 3)
		if ri, _ := g.status(old); ri.Replication.Role != "slave" {
			t.Fatalf("cycle %d: the old master %d rejoined as %q", c, old, ri.Replication.Role)
		}
		t.Logf("cycle %d: killed %d after %v+%v, elected %d in %v, first acknowledged send %v after the kill; "+
			"group offsets: confirmed %v, the killed master showed %v, the new master had %v (%d not replicated)",
			c, old, d1.Round(time.Millisecond), d2.Round(time.Millisecond), m,
			elections[len(elections)-1].Round(time.Millisecond), first.Round(time.Millisecond),
			snapOf(confirmed), snapOf(latest), snapOf(got), lost)
	}
	// Every producer resumed after the last kill, whenever it learnt the
	// new route.
	waitFor(t, routePeriod+30*time.Second, func() bool {
		first, _ := acks.resumed()
		return !slices.Contains(first, 0)
	}, "every producer acknowledged after the last cycle")
	perProducer, _ := acks.resumed()
	stopProducers()

	acked := acks.all()
	t.Logf("%d sends acknowledged, %d failed or refused during failovers", len(acked), acks.fails)
	t.Logf("election (kill -9 → a writable new master): %s", durations(elections))
	t.Logf("writes resume (kill -9 → first acknowledged send from any of %d producers): %s", nProducers, durations(firstAck))
	t.Logf("each producer's first acknowledged send after the last kill: %s", durations(perProducer))

	// Every acknowledged message is readable: a new group reads the topic
	// from the beginning, and the committing group gets all of it too.
	fresh := &recorder{}
	startPushConsumer(t, g.NameSrv, "failover-fresh", topic, "*", fresh.handle, noFlowControl...)
	if !poll(receiveTimeout, func() bool { return fresh.hasAll(acked) }) {
		t.Fatalf("a new group read %d messages; acknowledged and missing: %v", fresh.count(), fresh.missing(acked))
	}
	waitFor(t, receiveTimeout, func() bool {
		got := map[string]bool{}
		for _, d := range deliveries.snapshot() {
			got[d.body] = true
		}
		for _, b := range acked {
			if !got[b] {
				return false
			}
		}
		return true
	}, "the committing group receives every acknowledged message")

	// No instance of the committing group got what lay below the offsets
	// confirmed when it started; what it got twice above them was work
	// whose commit had not been confirmed.
	seen := map[[2]int64]int{}
	dups := 0
	for _, d := range deliveries.snapshot() {
		if floor := startedAt[d.instance]; d.offset < floor[d.queue] {
			t.Errorf("instance %d of the group got queue %d offset %d (%s), below the offset %d confirmed when it started",
				d.instance, d.queue, d.offset, d.body, floor[d.queue])
		}
		k := [2]int64{int64(d.queue), d.offset}
		if seen[k]++; seen[k] > 1 {
			dups++
		}
	}
	t.Logf("committing group: %d deliveries over %d instances, %d redeliveries (all above the confirmed offsets); "+
		"the killed masters had shown %d offsets of commits that were not yet replicated",
		len(deliveries.snapshot()), instance, dups, lostWindow)
}
