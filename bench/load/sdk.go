package load

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/client"
)

// sdkCounters are the run's shared counters, as the SDK producers see them.
type sdkCounters struct {
	sent, errs *atomic.Int64
	measuring  *atomic.Bool
	firstErr   *atomic.Pointer[string]
}

// runSDKProducer is one producer of the SDK mode (Config.Window > 0): a
// client.Producer of its own sending single messages with SendAsync,
// round-robin over topics, with at most Window unanswered at a time (the
// way an application sends per message). The latency recorded into hist is
// SendAsync to callback.
func runSDKProducer(ctx context.Context, cfg *Config, p int, topics []string, interval time.Duration, c sdkCounters, hist *hdrhistogram.Histogram) error {
	opts := []client.ProducerOption{client.WithGroup(fmt.Sprint("bench-sdk-", p)), client.WithSendTimeout(cfg.SendTimeout)}
	if !cfg.Credentials.IsZero() {
		opts = append(opts, client.WithCredentials(cfg.Credentials.AccessKey, cfg.Credentials.SecretKey))
	}
	if cfg.TLS != nil {
		opts = append(opts, client.WithTLS(cfg.TLS))
	}
	if cfg.Linger > 0 {
		opts = append(opts, client.WithLinger(cfg.Linger))
	}
	prod, err := client.NewProducer(cfg.Namesrv, opts...)
	if err != nil {
		return err
	}
	defer prod.Close()
	var histMu sync.Mutex
	window := make(chan struct{}, cfg.Window)
	next := firstSend(time.Now(), p, cfg.Producers, interval)
	for n := p; ctx.Err() == nil; n++ {
		if interval > 0 {
			next = next.Add(interval)
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		body := make([]byte, cfg.Size) // the SDK keeps the message until it is answered
		for i := 8; i < len(body); i += 64 {
			body[i] = byte('a' + rand.IntN(26))
		}
		start := time.Now()
		binary.BigEndian.PutUint64(body, uint64(start.UnixNano()))
		prod.SendAsync(ctx, &client.Message{Topic: topics[n%len(topics)], Body: body}, func(_ client.SendResult, err error) {
			<-window
			if !c.measuring.Load() {
				return
			}
			if err != nil {
				c.errs.Add(1)
				s := err.Error()
				c.firstErr.CompareAndSwap(nil, &s)
				return
			}
			c.sent.Add(1)
			histMu.Lock()
			_ = hist.RecordValue(max(time.Since(start).Microseconds(), 1))
			histMu.Unlock()
		})
	}
	return nil
}
