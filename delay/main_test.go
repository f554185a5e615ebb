package delay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the test run: every Service
// a test starts is closed, with the databases under it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
