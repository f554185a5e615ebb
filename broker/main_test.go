package broker

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the test run: every broker a
// test starts is shut down. The fasthttp server parks a worker-pool
// janitor for a while after shutdown and keeps a process-wide date
// updater.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}
