package poll

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestUntil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		err := Until(context.Background(), time.Second, 10*time.Millisecond, func() bool {
			calls++
			return time.Since(start) >= 95*time.Millisecond
		})
		if err != nil || time.Since(start) != 100*time.Millisecond || calls != 11 {
			t.Fatalf("err %v after %v and %d checks, want nil after 100ms and 11", err, time.Since(start), calls)
		}

		start = time.Now()
		err = Until(context.Background(), time.Second, 10*time.Millisecond, func() bool { return false })
		if !errors.Is(err, ErrTimeout) || time.Since(start) != time.Second {
			t.Fatalf("never true: %v after %v", err, time.Since(start))
		}

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := Until(ctx, time.Second, 10*time.Millisecond, func() bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ctx ended: %v", err)
		}
		if err := Until(context.Background(), 0, time.Hour, func() bool { return true }); err != nil {
			t.Fatalf("true at once: %v", err)
		}
	})
}
