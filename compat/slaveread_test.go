package compat

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// metric sums the samples of the metric name on the broker whose HTTP API
// is at httpAddr (GET /metrics) that carry every one of labels (each
// written as in the text format, `key="value"`).
func metric(t *testing.T, httpAddr, name string, labels ...string) float64 {
	t.Helper()
	resp, err := statusClient.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", httpAddr, err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, lbls := line[:sp], ""
		if i := strings.IndexByte(series, '{'); i >= 0 {
			series, lbls = series[:i], series[i:]
		}
		if series != name {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(lbls, l)
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			t.Fatalf("metrics of %s: bad sample %q", httpAddr, line)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics of %s: %v", httpAddr, err)
	}
	return sum
}

// TestOfficialClientReadsFromSlave: suggestWhichBrokerId with the official
// client's push consumer. In a group of three replicas whose
// slave_read_behind_bytes is 64 KiB, a consumer started on a backlog of
// about 18 times that is sent by the master to a slave, which serves most
// of the backlog, and back to the master once it has caught up: after
// that, new messages are served by the master alone. Every message
// arrives once. Where the pulls went is read from the brokers' own
// counters: messages served by pulls on each replica
// (rocketmq_messages_out_total) and the pull answers that sent the
// consumer elsewhere (ferry_replication_pull_redirects_total).
func TestOfficialClientReadsFromSlave(t *testing.T) {
	const (
		behind = 64 << 10 // slave_read_behind_bytes
		n      = 1000     // the backlog, of 1 KiB bodies
		round  = 20       // messages sent after the consumer caught up
		queues = 2
	)
	cfg := filepath.Join(t.TempDir(), "broker.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "[broker]\nslave_read_behind_bytes = %d\n", behind), 0o644); err != nil {
		t.Fatal(err)
	}
	g := startReplGroup(t, 3, "--config", cfg)
	m := g.master(startTimeout, 3)
	topic, group := "slave-read", "slave-read-group"
	createTopic(t, g.NameSrv, []string{g.replicas[m].Broker}, topic, queues)

	p := newProducer(t, g.NameSrv)
	pad := strings.Repeat("x", 1024)
	var backlog []string
	for i := range n {
		body := fmt.Sprintf("backlog-%04d-%s", i, pad)
		sendSync(t, p, primitive.NewMessage(topic, []byte(body))) // acks=all: every slave holds it
		backlog = append(backlog, body)
	}

	// served is, by replica id, the messages of topic its pulls served
	// to the group.
	served := func() map[int64]float64 {
		out := map[int64]float64{}
		for _, id := range g.ids() {
			out[id] = metric(t, g.replicas[id].HTTP, "rocketmq_messages_out_total",
				`topic="`+topic+`"`, `consumer_group="`+group+`"`)
		}
		return out
	}
	redirects := func(id int64, to string) float64 {
		return metric(t, g.replicas[id].HTTP, "ferry_replication_pull_redirects_total", `to="`+to+`"`)
	}
	for id, v := range served() {
		if v != 0 {
			t.Fatalf("replica %d served %v messages before the consumer started", id, v)
		}
	}

	rec := &recorder{}
	startPushConsumer(t, g.NameSrv, group, topic, "*", rec.handle, noFlowControl...)
	waitFor(t, receiveTimeout, func() bool { return rec.hasAll(backlog) }, "the consumer to receive the backlog of %d", n)
	backlogServed := served()
	fromSlaves := 0.0
	for id, v := range backlogServed {
		if id != m {
			fromSlaves += v
		}
	}
	t.Logf("backlog of %d served by the master (replica %d): %v; by the slaves: %v; master→slave redirects %v",
		n, m, backlogServed[m], fromSlaves, redirects(m, "slave"))
	if fromSlaves == 0 || redirects(m, "slave") == 0 {
		t.Fatalf("the master never sent the consumer to a slave: served by replica %v, master→slave redirects %v",
			backlogServed, redirects(m, "slave"))
	}
	if backlogServed[m] == 0 {
		t.Fatalf("the master served nothing of the backlog: %v", backlogServed)
	}

	// Caught up. A first round of new messages may still be read by a
	// pull the consumer had parked on a slave, whose answer sends it to
	// the master; the pulls after that are the master's alone.
	sendRound := func(prefix string) []string {
		var out []string
		for i := range round {
			body := fmt.Sprintf("%s-%02d", prefix, i)
			sendSync(t, p, primitive.NewMessage(topic, []byte(body)))
			out = append(out, body)
		}
		waitFor(t, receiveTimeout, func() bool { return rec.hasAll(out) }, "the consumer to receive the %s round", prefix)
		return out
	}
	settle := sendRound("settle")
	before := served()
	toMaster := 0.0
	for _, id := range g.ids() {
		if id != m {
			toMaster += redirects(id, "master")
		}
	}
	last := sendRound("caught-up")
	after := served()
	t.Logf("slave→master redirects %v; the last %d messages served by replica: master %v, slaves %v",
		toMaster, round, after[m]-before[m], func() map[int64]float64 {
			d := map[int64]float64{}
			for id := range after {
				if id != m {
					d[id] = after[id] - before[id]
				}
			}
			return d
		}())
	for id := range after {
		want := 0.0
		if id == m {
			want = round
		}
		if got := after[id] - before[id]; got != want {
			t.Fatalf("replica %d (master %d) served %v of the %d messages sent after the consumer caught up, want %v: the consumer is not back on the master",
				id, m, got, round, want)
		}
	}

	// Every message once.
	all := append(append(backlog, settle...), last...)
	counts := rec.bodies()
	for _, b := range all {
		if c := counts[b]; c != 1 {
			t.Errorf("%.20s… received %d times", b, c)
		}
	}
	if got := rec.count(); got != len(all) {
		t.Fatalf("%d deliveries of %d messages", got, len(all))
	}
}
