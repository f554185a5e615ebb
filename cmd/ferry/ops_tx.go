package main

import (
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
	return opsParent("tx", "transactional messages: the open transactions", list.command())
}
