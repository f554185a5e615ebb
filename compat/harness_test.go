package compat

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Timeouts are generous: CI machines are small and busy, and a rebalance
// of the official client can take up to its 20 s period.
const (
	startTimeout   = 60 * time.Second
	stopTimeout    = 20 * time.Second
	receiveTimeout = 90 * time.Second
)

// ferryBin is the binary built from this checkout by TestMain.
var ferryBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	// The client logs through logrus at info level by default; only
	// errors are worth seeing next to test output.
	rlog.SetLogLevel("error")

	if bin := os.Getenv("FERRY_BIN"); bin != "" {
		// A prebuilt binary, e.g. of a release or of a known-good tree.
		ferryBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ferry-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "compat:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ferryBin = filepath.Join(dir, "ferry")
	build := exec.Command(goTool(), "build", "-o", ferryBin, "./cmd/ferry")
	build.Dir = ".." // the main module, so the binary is built with its own go.mod
	build.Env = append(os.Environ(), "GOWORK=off")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "compat: building ferry:", err)
		return 1
	}
	return m.Run()
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// waitFor polls cond until it holds or timeout passes, then fails the
// test with the message.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("timed out after %v: "+format, append([]any{timeout}, args...)...)
	}
}

// poll reports whether cond became true within timeout.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// ---------------------------------------------------------------------------
// ferry processes

// proc is one running ferry process. Its stderr (JSON log lines) is read
// continuously; the last lines are printed if the test fails.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []map[string]any
	raw     []string      // the last rawKeep lines, for failure reports
	changed chan struct{} // closed and replaced when a line arrives

	exited chan struct{} // closed once the process is gone and reaped
}

const rawKeep = 60

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.addLine(sc.Text())
		}
		_ = cmd.Wait()
		close(p.exited)
		p.addLine(fmt.Sprintf("(process exited: %v)", cmd.ProcessState))
	}()
	t.Cleanup(func() {
		p.stop(t) // graceful, so a shutdown that hangs fails the test
		p.logProblems(t)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("last log lines of %s (pid %d):\n%s", name, cmd.Process.Pid, strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) addLine(s string) {
	var m map[string]any
	_ = json.Unmarshal([]byte(s), &m)
	p.mu.Lock()
	defer p.mu.Unlock()
	if m != nil {
		p.lines = append(p.lines, m)
	}
	p.raw = append(p.raw, s)
	if len(p.raw) > rawKeep {
		p.raw = p.raw[len(p.raw)-rawKeep:]
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// logProblems logs (for -v and failures) the warnings and errors the
// process logged.
func (p *proc) logProblems(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if l["level"] != "warn" && l["level"] != "error" {
			continue
		}
		if n++; n <= 20 {
			t.Logf("%s logged: %v", p.name, l)
		}
	}
	if n > 20 {
		t.Logf("%s logged %d warnings and errors in all", p.name, n)
	}
}

// waitLog returns the fields of the first log line whose message is msg.
func (p *proc) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			// zerolog names the field "message"; accept "msg" too.
			if l["message"] == msg || l["msg"] == msg {
				p.mu.Unlock()
				return l
			}
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-p.exited:
			p.mu.Lock()
			exitedBefore := true
			for _, l := range p.lines {
				if l["message"] == msg || l["msg"] == msg {
					exitedBefore = false
				}
			}
			p.mu.Unlock()
			if exitedBefore {
				t.Fatalf("%s exited before logging %q", p.name, msg)
			}
		case <-timer.C:
			t.Fatalf("%s did not log %q within %v", p.name, msg, timeout)
		}
	}
}

// stop sends SIGTERM and waits; after stopTimeout it kills the process.
// It reports whether the process exited on its own.
func (p *proc) stop(t *testing.T) bool {
	t.Helper()
	select {
	case <-p.exited:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(stopTimeout):
		t.Errorf("%s did not stop within %v of SIGTERM; killing it", p.name, stopTimeout)
		p.kill(t)
		return false
	}
}

// kill sends SIGKILL and waits until the process is reaped.
func (p *proc) kill(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func fieldString(t *testing.T, fields map[string]any, key string) string {
	t.Helper()
	s, ok := fields[key].(string)
	if !ok || s == "" {
		t.Fatalf("log line %v has no string field %q", fields, key)
	}
	return s
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("address %q has no port", addr)
	}
	return p
}

// waitHTTPReady polls /readyz until it answers 200.
func waitHTTPReady(t *testing.T, httpAddr string) {
	t.Helper()
	cl := &http.Client{Timeout: 2 * time.Second}
	waitFor(t, startTimeout, func() bool {
		resp, err := cl.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s/readyz never answered 200", httpAddr)
}

// server is `ferry server`: a name server and a broker in one process. It
// can be stopped, killed and started again on the same data directory and
// ports.
type server struct {
	name    string
	dataDir string
	flush   string
	extra   []string // more flags, kept across restarts
	// advertise is the address clients are given for the broker ("":
	// 127.0.0.1, where it listens).
	advertise string

	nsPort, brokerPort, httpPort int // 0 until the first start picked them

	p       *proc
	NameSrv string // 127.0.0.1:port, what clients are given
	Broker  string // the broker's advertised address
}

func startServer(t *testing.T, flush string) *server {
	t.Helper()
	s := &server{name: "ferry server", dataDir: t.TempDir(), flush: flush}
	s.start(t)
	return s
}

func (s *server) start(t *testing.T) {
	t.Helper()
	adv := s.advertise
	if adv == "" {
		adv = "127.0.0.1"
	}
	args := append([]string{"server",
		"--data-dir", s.dataDir,
		"--namesrv-port", strconv.Itoa(s.nsPort),
		"--broker-port", strconv.Itoa(s.brokerPort),
		"--http-port", strconv.Itoa(s.httpPort),
		"--host", "127.0.0.1",
		"--advertise-host", adv,
		"--flush", s.flush,
		"--log-format", "json"}, s.extra...)
	s.p = startProc(t, s.name, args...)
	ns := s.p.waitLog(t, "name server ready", startTimeout)
	br := s.p.waitLog(t, "broker ready", startTimeout)
	nsPort, err := strconv.Atoi(fieldString(t, ns, "port"))
	if err != nil {
		t.Fatalf("name server port: %v", err)
	}
	s.nsPort = nsPort
	s.NameSrv = "127.0.0.1:" + strconv.Itoa(nsPort)
	s.Broker = fieldString(t, br, "addr")
	s.brokerPort = portOf(t, s.Broker)
	httpAddr := fieldString(t, br, "http")
	s.httpPort = portOf(t, httpAddr)
	waitHTTPReady(t, httpAddr)
}

// restart stops the server gracefully and starts it again.
func (s *server) restart(t *testing.T) {
	t.Helper()
	if !s.p.stop(t) {
		t.Fatalf("%s did not stop on SIGTERM", s.name)
	}
	s.start(t)
}

// kill9 kills the server with SIGKILL and starts it again.
func (s *server) kill9AndRestart(t *testing.T) {
	t.Helper()
	s.p.kill(t)
	s.start(t)
}

// ---------------------------------------------------------------------------
// topics and routes

// createTopic creates topic on the broker at brokerAddr through the
// client's admin API and waits until the name server routes it to
// brokers distinct brokers.
func createTopic(t *testing.T, nameSrv string, brokerAddrs []string, topic string, queues int) {
	t.Helper()
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{nameSrv})))
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer adm.Close()
	for _, addr := range brokerAddrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := adm.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(addr),
			admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
		cancel()
		if err != nil {
			t.Fatalf("create topic %s on %s: %v", topic, addr, err)
		}
	}
	waitRoute(t, nameSrv, topic, len(brokerAddrs))
}

// waitRoute polls the name server until topic has writable queues on
// brokers brokers.
func waitRoute(t *testing.T, nameSrv, topic string, brokers int) *remoting.TopicRouteData {
	t.Helper()
	cl := remoting.NewClient(remoting.ClientConfig{})
	defer cl.Close()
	var route *remoting.TopicRouteData
	waitFor(t, startTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, err := remoting.GetRouteInfo(ctx, cl, nameSrv, topic)
		if err != nil {
			return false
		}
		n := 0
		for _, q := range r.QueueDatas {
			if protocol.PermWritable(q.Perm) && q.WriteQueueNums > 0 {
				n++
			}
		}
		route = r
		return n >= brokers
	}, "name server %s has no route for %s on %d brokers", nameSrv, topic, brokers)
	return route
}

// queryOffset asks a broker for a group's committed offset of one queue
// (QUERY_CONSUMER_OFFSET); -1 if it has none.
func queryOffset(t *testing.T, cl *remoting.Client, brokerAddr, group, topic string, queue int) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, brokerAddr, remoting.NewRequest(protocol.ReqQueryConsumerOffset, map[string]string{
		"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(queue)}, nil))
	if err != nil {
		t.Fatalf("query offset: %v", err)
	}
	if resp.Code != protocol.RespSuccess {
		return -1
	}
	off, err := strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
	if err != nil {
		t.Fatalf("query offset: bad offset %q", resp.ExtFields["offset"])
	}
	return off
}
