package load

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/ferrymq/ferry/client"
)

// runTxProducer is one producer of the transaction mode
// (Config.Transactions): a client.Producer of its own sending each message
// with SendInTransaction, the local transaction committing at once, one
// transaction at a time. The latency recorded into hist is the whole
// transaction: half message, local transaction, END_TRANSACTION answered.
// The body starts with the send time, so the consume mode measures the
// end-to-end latency of a committed message.
func runTxProducer(ctx context.Context, cfg *Config, p int, topics []string, interval time.Duration, c sdkCounters, hist *hdrhistogram.Histogram) error {
	commit := func(context.Context, client.SendResult) client.TransactionState { return client.TxCommit }
	opts := []client.ProducerOption{client.WithGroup(fmt.Sprint("bench-tx-", p)), client.WithSendTimeout(cfg.SendTimeout),
		client.WithTransactionChecker(func(context.Context, *client.MessageExt) client.TransactionState { return client.TxCommit })}
	if !cfg.Credentials.IsZero() {
		opts = append(opts, client.WithCredentials(cfg.Credentials.AccessKey, cfg.Credentials.SecretKey))
	}
	if cfg.TLS != nil {
		opts = append(opts, client.WithTLS(cfg.TLS))
	}
	prod, err := client.NewProducer(cfg.Namesrv, opts...)
	if err != nil {
		return err
	}
	defer prod.Close()
	body := make([]byte, cfg.Size)
	for i := 8; i < len(body); i++ {
		body[i] = byte('a' + rand.IntN(26))
	}
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
		start := time.Now()
		binary.BigEndian.PutUint64(body, uint64(start.UnixNano()))
		_, err := prod.SendInTransaction(ctx, &client.Message{Topic: topics[n%len(topics)], Body: body}, commit)
		if !c.measuring.Load() {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.errs.Add(1)
			s := err.Error()
			c.firstErr.CompareAndSwap(nil, &s)
			continue
		}
		c.sent.Add(1)
		_ = hist.RecordValue(max(time.Since(start).Microseconds(), 1))
	}
	return nil
}
