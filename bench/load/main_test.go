package load

import (
	"testing"

	"go.uber.org/goleak"
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
