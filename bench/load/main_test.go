package load

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/namesrv"
)

// TestMain checks that no producer, consumer or server goroutine outlives
// the test run. The fasthttp server (the broker's HTTP side) parks a
// worker-pool janitor for a while after shutdown and keeps a process-wide
// date updater.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

// startCluster starts a name server and one broker on 127.0.0.1 with data
// in dataDir and aclFile ("" for none), stopped when the test ends.
func startCluster(t *testing.T, dataDir, aclFile string) (*namesrv.Server, *broker.Broker) {
	t.Helper()
	ns, err := namesrv.New(namesrv.Config{ListenAddr: "127.0.0.1:0", ACLFile: aclFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Shutdown(context.Background()) })
	cfg := broker.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.ListenHost, cfg.AdvertiseHost, cfg.Port, cfg.HTTPPort = "127.0.0.1", "127.0.0.1", 0, -1
	cfg.SegmentSize, cfg.MaxMessageSize = 16<<20, 1<<20
	cfg.NamesrvAddrs = []string{ns.Addr()}
	cfg.ACLFile = aclFile
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return ns, b
}
