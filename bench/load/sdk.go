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
		if cfg.SignRequests {
			opts = append(opts, client.WithRequestSigning())
		}
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

// startSDKConsumers starts cfg.Consumers client.PushConsumers, each in a
// group of its own ("bench-sdk-consumer-N") subscribing every topic, and
// calls seen with the born time (the body's first 8 bytes) of every
// message they deliver. stop closes them.
func startSDKConsumers(ctx context.Context, cfg *Config, topics []string, seen func(born int64)) (stop func(), err error) {
	var cons []*client.PushConsumer
	stop = func() {
		for _, c := range cons {
			_ = c.Close()
		}
	}
	handler := func(_ context.Context, msgs []*client.MessageExt) error {
		for _, m := range msgs {
			if len(m.Body) >= 8 {
				seen(int64(binary.BigEndian.Uint64(m.Body)))
			}
		}
		return nil
	}
	for i := 0; i < cfg.Consumers; i++ {
		opts := []client.PushConsumerOption{client.WithGroup(fmt.Sprint("bench-sdk-consumer-", i))}
		if cfg.PullBatch > 0 {
			opts = append(opts, client.WithPullBatchSize(cfg.PullBatch))
		}
		if !cfg.Credentials.IsZero() {
			opts = append(opts, client.WithCredentials(cfg.Credentials.AccessKey, cfg.Credentials.SecretKey))
		}
		if cfg.TLS != nil {
			opts = append(opts, client.WithTLS(cfg.TLS))
		}
		c, err := client.NewPushConsumer(cfg.Namesrv, handler, opts...)
		if err != nil {
			stop()
			return nil, err
		}
		for _, t := range topics {
			if err := c.Subscribe(t, "*"); err != nil {
				stop()
				return nil, err
			}
		}
		if err := c.Start(ctx); err != nil {
			stop()
			return nil, fmt.Errorf("load: start consumer %d: %w", i, err)
		}
		cons = append(cons, c)
	}
	return stop, nil
}
