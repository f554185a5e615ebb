package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
)

func opsTopicFlags(create bool) []cli.Flag {
	fs := []cli.Flag{
		&cli.IntFlag{Name: "queues", Aliases: []string{"q"}, Usage: "read and write queue count (default 8)"},
		&cli.IntFlag{Name: "read-queues", Usage: "read queue count"},
		&cli.IntFlag{Name: "write-queues", Usage: "write queue count"},
		&cli.StringFlag{Name: "perm", Usage: "permission: RW, R or W (default RW)"},
		&cli.BoolFlag{Name: "order", Usage: "an ordered topic"},
		&cli.DurationFlag{Name: "dedup-window", Usage: "store a message once per UNIQ_KEY or Idempotency-Key within this time (e.g. 10m; 0: off)"},
	}
	if create {
		fs = append(fs, opsFlagBroker)
	}
	return fs
}

func opsCheckTopicFlags(c *cli.Context) error {
	for _, n := range []string{"queues", "read-queues", "write-queues"} {
		if c.IsSet(n) && (c.Int(n) < 1 || c.Int(n) > 1024) {
			return opsUsageError("--%s %d: want 1 to 1024", n, c.Int(n))
		}
	}
	if c.IsSet("perm") {
		if _, err := admin.ParsePerm(c.String("perm")); err != nil || c.String("perm") == "" {
			return opsUsageError("--perm %q: want RW, R or W", c.String("perm"))
		}
	}
	if c.IsSet("dedup-window") && (c.Duration("dedup-window") < 0 || c.Duration("dedup-window") > 7*24*time.Hour) {
		return opsUsageError("--dedup-window %v: want 0 (off) to 168h", c.Duration("dedup-window"))
	}
	return nil
}

// opsQueueCounts reads --queues, --read-queues and --write-queues (0: not
// given).
func opsQueueCounts(c *cli.Context) (r, w int32) {
	if c.IsSet("queues") {
		r, w = int32(c.Int("queues")), int32(c.Int("queues"))
	}
	if c.IsSet("read-queues") {
		r = int32(c.Int("read-queues"))
	}
	if c.IsSet("write-queues") {
		w = int32(c.Int("write-queues"))
	}
	return r, w
}

func opsTopicCommand() *cli.Command {
	create := opsLeaf{
		name: "create", usage: "create a topic on every broker (or those given by --broker)", args: "<topic>", nargs: 1,
		flags: opsTopicFlags(true), check: opsCheckTopicFlags,
		act: func(e *opsEnv, c *cli.Context) error {
			r, w := opsQueueCounts(c)
			spec := admin.TopicSpec{Topic: c.Args().First(), ReadQueues: r, WriteQueues: w, Perm: c.String("perm"),
				Order: c.Bool("order"), DedupWindow: c.Duration("dedup-window"), Brokers: c.StringSlice("broker")}
			brokers, err := e.admin.CreateTopic(e.ctx, spec)
			if err != nil {
				return err
			}
			return opsDone(e, "created", "topic", spec.Topic, brokers)
		},
	}
	update := opsLeaf{
		name: "update", usage: "change a topic's queue counts, permission or order on every broker that has it", args: "<topic>", nargs: 1,
		flags: opsTopicFlags(false),
		check: func(c *cli.Context) error {
			if err := opsCheckTopicFlags(c); err != nil {
				return err
			}
			for _, n := range []string{"queues", "read-queues", "write-queues", "perm", "order", "dedup-window"} {
				if c.IsSet(n) {
					return nil
				}
			}
			return opsUsageError("update: nothing to change (give --queues, --read-queues, --write-queues, --perm, --order or --dedup-window)")
		},
		act: func(e *opsEnv, c *cli.Context) error {
			var u admin.TopicUpdate
			r, w := opsQueueCounts(c)
			if r > 0 {
				u.ReadQueues = &r
			}
			if w > 0 {
				u.WriteQueues = &w
			}
			if c.IsSet("perm") {
				p := c.String("perm")
				u.Perm = &p
			}
			if c.IsSet("order") {
				o := c.Bool("order")
				u.Order = &o
			}
			if c.IsSet("dedup-window") {
				d := c.Duration("dedup-window")
				u.DedupWindow = &d
			}
			brokers, err := e.admin.UpdateTopic(e.ctx, c.Args().First(), u)
			if err != nil {
				return err
			}
			return opsDone(e, "updated", "topic", c.Args().First(), brokers)
		},
	}
	del := opsLeaf{
		name: "delete", usage: "delete a topic from every broker and name server", args: "<topic>", nargs: 1,
		flags: []cli.Flag{opsFlagYes},
		check: func(c *cli.Context) error { return opsConfirm(c, "delete topic "+c.Args().First()) },
		act: func(e *opsEnv, c *cli.Context) error {
			brokers, err := e.admin.DeleteTopic(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return opsDone(e, "deleted", "topic", c.Args().First(), brokers)
		},
	}
	list := opsLeaf{
		name: "list", usage: "topics with their queue counts and permission on each broker", nargs: 0,
		flags: []cli.Flag{&cli.BoolFlag{Name: "system", Usage: "include retry, dead-letter and internal topics"}},
		act: func(e *opsEnv, c *cli.Context) error {
			ts, err := e.admin.Topics(e.ctx, c.Bool("system"))
			if err != nil {
				return err
			}
			return e.result(map[string]any{"topics": ts}, func() error {
				var rows [][]string
				for _, t := range ts {
					for _, b := range t.Brokers {
						rows = append(rows, []string{t.Topic, b.Broker, opsI32(b.ReadQueues), opsI32(b.WriteQueues), b.Perm, strconv.FormatBool(b.Order)})
					}
				}
				return e.table([]string{"TOPIC", "BROKER", "READ-QUEUES", "WRITE-QUEUES", "PERM", "ORDER"}, rows)
			})
		},
	}
	describe := opsLeaf{
		name: "describe", usage: "a topic's configuration and per-queue min/max offsets and last store time", args: "<topic>", nargs: 1,
		act: func(e *opsEnv, c *cli.Context) error {
			d, err := e.admin.DescribeTopic(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return e.result(d, func() error {
				var rows [][]string
				for _, b := range d.Brokers {
					rows = append(rows, []string{b.Broker, b.Addr, opsI32(b.ReadQueues), opsI32(b.WriteQueues), b.Perm, strconv.FormatBool(b.Order)})
				}
				if err := e.table([]string{"BROKER", "ADDR", "READ-QUEUES", "WRITE-QUEUES", "PERM", "ORDER"}, rows); err != nil {
					return err
				}
				fmt.Fprintln(e.out)
				rows = rows[:0]
				for _, q := range d.Queues {
					rows = append(rows, []string{q.Broker, opsI32(q.QueueID), opsI64(q.MinOffset), opsI64(q.MaxOffset), opsI64(q.Messages), opsTime(q.LastStoreMS)})
				}
				rows = append(rows, []string{"TOTAL", "", "", "", opsI64(d.Messages), ""})
				return e.table([]string{"BROKER", "QUEUE", "MIN-OFFSET", "MAX-OFFSET", "MESSAGES", "LAST-STORED"}, rows)
			})
		},
	}
	route := opsLeaf{
		name: "route", usage: "the route the name servers give clients for a topic", args: "<topic>", nargs: 1,
		act: func(e *opsEnv, c *cli.Context) error {
			r, err := e.admin.Route(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return e.result(r, func() error {
				addrs := map[string]string{}
				for _, b := range r.Brokers {
					addrs[b.Broker] = b.Addrs[0]
				}
				var rows [][]string
				for _, q := range r.Queues {
					rows = append(rows, []string{q.Broker, addrs[q.Broker], opsI32(q.ReadQueues), opsI32(q.WriteQueues), q.Perm})
				}
				return e.table([]string{"BROKER", "ADDR", "READ-QUEUES", "WRITE-QUEUES", "PERM"}, rows)
			})
		},
	}
	return opsParent("topic", "create, change, delete and inspect topics",
		create.command(), update.command(), del.command(), list.command(), describe.command(), route.command())
}

// opsDone reports a create, update or delete.
func opsDone(e *opsEnv, verb, kind, name string, brokers []string) error {
	if brokers == nil {
		brokers = []string{}
	}
	return e.result(map[string]any{kind: name, "action": verb, "brokers": brokers}, func() error {
		on := ""
		if len(brokers) > 0 {
			on = " on " + strings.Join(brokers, ", ")
		}
		_, err := fmt.Fprintf(e.out, "%s %s %s%s\n", verb, kind, name, on)
		return err
	})
}

func opsI32(v int32) string { return strconv.FormatInt(int64(v), 10) }
func opsI64(v int64) string { return strconv.FormatInt(v, 10) }
