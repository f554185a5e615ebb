package delay

import (
	"testing"

	"github.com/ferrymq/ferry/consumequeue"
)

// TimerStats counts pending entries up to its limit and reports the
// earliest due time.
func TestTimerStats(t *testing.T) {
	_, ti := memTimerIndex(t)
	if st, err := ti.TimerStats(10); err != nil || st != (TimerStat{}) {
		t.Fatalf("empty: %+v (%v)", st, err)
	}
	if err := ti.Dispatch([]consumequeue.Record{timerRecord(10, 3000), timerRecord(20, 1000), timerRecord(30, 2000)}); err != nil {
		t.Fatal(err)
	}
	if st, err := ti.TimerStats(10); err != nil || st != (TimerStat{Pending: 3, NextDueMs: 1000}) {
		t.Fatalf("three: %+v (%v)", st, err)
	}
	if st, err := ti.TimerStats(2); err != nil || st != (TimerStat{Pending: 2, Capped: true, NextDueMs: 1000}) {
		t.Fatalf("capped at two: %+v (%v)", st, err)
	}
}
