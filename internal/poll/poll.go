// Package poll waits for a condition that nothing announces (another
// process's state, a file, progress of goroutines a test does not own) by
// checking it at an interval until it holds or a deadline passes.
//
// Code that can be told of a change waits on that instead (the broker's
// held long polls wait on the dispatcher's wake-up), and timer-driven
// logic is tested on a testing/synctest clock; this is for what is left.
package poll

import (
	"context"
	"errors"
	"time"
)

// ErrTimeout is Until's error when the condition did not hold in time.
var ErrTimeout = errors.New("poll: condition not met before the deadline")

// Until checks cond at once and then every interval until it holds
// (nil), ctx ends (ctx.Err()) or timeout passes (ErrTimeout, after one
// last check). interval must be positive.
func Until(ctx context.Context, timeout, interval time.Duration, cond func() bool) error {
	if cond() {
		return nil
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			if cond() {
				return nil
			}
			return ErrTimeout
		case <-tick.C:
			if cond() {
				return nil
			}
		}
	}
}
