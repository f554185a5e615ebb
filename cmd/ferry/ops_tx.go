package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
)

func opsTxCommand() *cli.Command {
	list := opsLeaf{
		name: "list", usage: "open transactions: broker, producer group, topic, queue, message id, age and check-backs", nargs: 0,
		act: func(e *opsEnv, c *cli.Context) error {
			txs, err := e.admin.Transactions(e.ctx)
			if err != nil {
				return err
			}
			if txs == nil {
				txs = []admin.TransactionInfo{}
			}
			return e.result(map[string]any{"transactions": txs}, func() error {
				var rows [][]string
				for _, t := range txs {
					rows = append(rows, []string{t.Broker, t.ProducerGroup, t.Topic, strconv.Itoa(int(t.QueueID)), t.MsgID,
						strconv.FormatInt(t.CommitLogOffset, 10), (time.Duration(t.AgeMs) * time.Millisecond).Round(time.Second).String(),
						strconv.Itoa(t.Checks)})
				}
				return e.table([]string{"BROKER", "PRODUCER-GROUP", "TOPIC", "QUEUE", "MSG-ID", "OFFSET", "AGE", "CHECKS"}, rows)
			})
		},
	}
	show := opsLeaf{
		name: "show", args: "<id>", nargs: 1,
		usage: "an open transaction by message id (or HTTP transaction id): producer group, age, check-backs, its messages",
		act: func(e *opsEnv, c *cli.Context) error {
			id := c.Args().First()
			txs, err := e.admin.Transaction(e.ctx, id)
			if err != nil {
				return err
			}
			first := txs[0]
			return e.result(map[string]any{"id": id, "broker": first.Broker, "producer_group": first.ProducerGroup,
				"age_ms": first.AgeMs, "checks": first.Checks, "expires_ms": first.ExpiresMs, "messages": txs}, func() error {
				expires := "-"
				if first.ExpiresMs > 0 {
					expires = time.UnixMilli(first.ExpiresMs).UTC().Format(time.RFC3339)
				}
				kind := "message"
				if first.HTTPTx != "" {
					kind = "HTTP transaction"
				}
				if err := e.table([]string{"ID", "KIND", "BROKER", "PRODUCER-GROUP", "AGE", "CHECKS", "EXPIRES"}, [][]string{{id, kind,
					first.Broker, first.ProducerGroup, age(first.AgeMs), strconv.Itoa(first.Checks), expires}}); err != nil {
					return err
				}
				fmt.Fprintln(e.out)
				var rows [][]string
				for _, t := range txs {
					rows = append(rows, []string{t.MsgID, t.Topic, strconv.Itoa(int(t.QueueID)), age(t.AgeMs)})
				}
				return e.table([]string{"MSG-ID", "TOPIC", "QUEUE", "AGE"}, rows)
			})
		},
	}
	return opsParent("tx", "transactional messages: the open transactions", list.command(), show.command())
}

func age(ms int64) string { return (time.Duration(ms) * time.Millisecond).Round(time.Second).String() }

func opsProducerCommand() *cli.Command {
	list := opsLeaf{
		name: "list", usage: "idempotent producers: broker, producer id, epoch, last seen, last sequence per queue", nargs: 0,
		act: func(e *opsEnv, c *cli.Context) error {
			ps, err := e.admin.Producers(e.ctx)
			if err != nil {
				return err
			}
			return e.result(map[string]any{"producers": ps}, func() error {
				var rows [][]string
				for _, p := range ps {
					seen := time.UnixMilli(p.LastSeenMs).UTC().Format(time.RFC3339)
					if len(p.Queues) == 0 {
						rows = append(rows, []string{p.Broker, p.ID, strconv.Itoa(int(p.Epoch)), seen, "-", "-", "-"})
					}
					for _, q := range p.Queues {
						rows = append(rows, []string{p.Broker, p.ID, strconv.Itoa(int(p.Epoch)), seen, q.Topic,
							strconv.Itoa(int(q.QueueID)), strconv.FormatInt(q.LastSeq, 10)})
					}
				}
				return e.table([]string{"BROKER", "PRODUCER-ID", "EPOCH", "LAST-SEEN", "TOPIC", "QUEUE", "LAST-SEQ"}, rows)
			})
		},
	}
	return opsParent("producer", "idempotent producers: ids, epochs and last sequences", list.command())
}
