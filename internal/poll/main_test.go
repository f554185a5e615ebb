package poll

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Until leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
