package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controller/controlclient"
	ipoll "github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/remoting"
)

// proc is a ferry process started by a test.
type proc struct {
	cmd  *exec.Cmd
	logs chan map[string]any // its JSON log lines, until it exits
}

// startProc runs this test binary as `ferry args...` and stops it (SIGTERM,
// then SIGKILL) when the test ends.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--log-format", "json")...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: make(chan map[string]any, 1024)}
	go func() {
		defer close(p.logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			select {
			case p.logs <- line:
			default: // nobody waits for more: drop
			}
		}
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// waitLog returns the first log line with this message.
func (p *proc) waitLog(t *testing.T, message string) map[string]any {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.logs:
			if !ok {
				t.Fatalf("process exited before logging %q", message)
			}
			if line["message"] == message {
				return line
			}
		case <-timeout:
			t.Fatalf("no %q in the log after 30s", message)
		}
	}
}

func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// freePorts returns n loopback ports free at the time of the call.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func controlClient(t *testing.T, addrs ...string) *controlclient.Client {
	rc := remoting.NewClient(remoting.ClientConfig{})
	t.Cleanup(func() { rc.Close() })
	return controlclient.New(rc, addrs, 2*time.Second)
}

func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if ipoll.Until(context.Background(), within, 20*time.Millisecond, cond) != nil {
		t.Fatalf("timed out after %v waiting for %s", within, what)
	}
}

// TestClusterListControlPlane: `ferry server` with a control port runs a
// single-voter control plane, and `cluster list` shows each broker's
// group epoch and in-sync set.
func TestClusterListControlPlane(t *testing.T) {
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	cfg := writeConfig(t, fmt.Sprintf("[namesrv]\ncontroller_port = %d\ncontroller_dir = %q\n", port, filepath.Join(dir, "controller")))
	p := startProc(t, "server", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--namesrv-port", "0",
		"--broker-port", "0", "--http-port", "-1", "--host", "127.0.0.1", "--advertise-host", "127.0.0.1")
	ns := "127.0.0.1:" + fmt.Sprint(p.waitLog(t, "name server ready")["port"])
	brokerAddr, _ := p.waitLog(t, "broker ready")["addr"].(string)

	// Until the broker side heartbeats by itself, stand in for it.
	cc := controlClient(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rep controller.HeartbeatReply
	pollUntil(t, 20*time.Second, "the control plane to take a heartbeat", func() bool {
		var err error
		rep, err = cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: "DefaultCluster", BrokerName: "broker-a", ReplicaID: 0, Addr: brokerAddr})
		return err == nil
	})
	if rep.Role != controller.RoleMaster || rep.Epoch != 1 {
		t.Fatalf("heartbeat reply %+v", rep)
	}
	pollUntil(t, 20*time.Second, "the broker in the routes", func() bool {
		out, _, code := ferry(t, "", "cluster", "list", "--interval", "0", "--namesrv", ns)
		return code == 0 && strings.Contains(out, "broker-a")
	})
	step{name: "cluster_list_controller", args: []string{"cluster", "list", "--interval", "0"}}.check(t, "--namesrv", ns)
	out, _, code := ferry(t, "", "cluster", "list", "--interval", "0", "-o", "json", "--namesrv", ns)
	var doc struct {
		Brokers []struct {
			BrokerName string  `json:"broker_name"`
			Epoch      *int64  `json:"epoch"`
			InSync     []int64 `json:"in_sync"`
			Role       string  `json:"role"`
		} `json:"brokers"`
		ControlPlane controller.StateReply `json:"control_plane"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if len(doc.Brokers) != 1 || doc.Brokers[0].Epoch == nil || *doc.Brokers[0].Epoch != 1 || len(doc.Brokers[0].InSync) != 1 ||
		!doc.ControlPlane.Leader || len(doc.ControlPlane.Groups) != 1 || doc.ControlPlane.Groups[0].LastReason == "" {
		t.Fatalf("json:\n%s", out)
	}
}

// TestControlPlaneNamesrvProcesses: three `ferry namesrv` processes are the
// control plane's voters; after kill -9 of the leading one, the other two
// elect a new master for a group whose master went silent.
func TestControlPlaneNamesrvProcesses(t *testing.T) {
	ports := freePorts(t, 3)
	var peers []string
	for i, p := range ports {
		peers = append(peers, fmt.Sprintf("%q", fmt.Sprintf("ns%d@127.0.0.1:%d", i+1, p)))
	}
	procs := map[string]*proc{}
	var addrs []string
	for i, p := range ports {
		dir := t.TempDir()
		cfg := writeConfig(t, fmt.Sprintf("[namesrv]\ncontroller_port = %d\ncontroller_id = \"ns%d\"\ncontroller_peers = [%s]\ncontroller_dir = %q\ncontroller_lease = \"1s\"\n",
			p, i+1, strings.Join(peers, ", "), dir))
		pr := startProc(t, "namesrv", "--config", cfg, "--namesrv-port", "0", "--host", "127.0.0.1")
		addr := "127.0.0.1:" + fmt.Sprint(pr.waitLog(t, "name server ready")["port"])
		procs[addr] = pr
		addrs = append(addrs, addr)
	}
	cc := controlClient(t, addrs...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var leader string
	pollUntil(t, 20*time.Second, "a control-plane leader", func() bool {
		st, err := cc.State(ctx, "", "")
		leader = st.LeaderAddr
		return err == nil && leader != ""
	})

	// Two replicas heartbeat; the first to do so becomes master, and it
	// puts both in the in-sync set.
	beat := func(id int64, epoch int64) (controller.HeartbeatReply, error) {
		return cc.Heartbeat(ctx, controller.HeartbeatRequest{Cluster: "c", BrokerName: "g", ReplicaID: id,
			Addr: fmt.Sprintf("127.0.0.1:%d", 20000+id), Epoch: epoch, MaxOffset: 100})
	}
	r1, err := beat(1, 0)
	if err != nil || r1.Role != controller.RoleMaster {
		t.Fatalf("first heartbeat: %+v %v", r1, err)
	}
	if _, err := beat(2, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := cc.AlterInSync(ctx, controller.AlterInSyncRequest{Cluster: "c", BrokerName: "g", ReplicaID: 1, Epoch: 1, InSync: []int64{1, 2}}); err != nil {
		t.Fatal(err)
	}

	// kill -9 the leading name server; replica 2 keeps heartbeating,
	// replica 1 (the master) is silent from now on.
	procs[leader].kill()
	killed := time.Now()
	var g *controller.Group
	pollUntil(t, 30*time.Second, "replica 2 elected by the two name servers left", func() bool {
		if _, err := beat(2, 1); err != nil {
			return false
		}
		st, err := cc.State(ctx, "c", "g")
		if err != nil || len(st.Groups) == 0 {
			return false
		}
		g = st.Groups[0]
		return g.MasterID == 2
	})
	t.Logf("replica 2 master in epoch %d %v after kill -9 of the leading name server: %s", g.Epoch, time.Since(killed), g.LastReason)
	if g.Epoch != 2 {
		t.Fatalf("epoch %d", g.Epoch)
	}
}
