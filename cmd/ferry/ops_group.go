package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
)

func opsGroupFlags(create bool) []cli.Flag {
	fs := []cli.Flag{
		&cli.IntFlag{Name: "retry-max", Usage: "how many times a failed message is retried before the dead-letter queue (-1 to 1000; default 16)"},
		&cli.BoolFlag{Name: "broadcast", Usage: "allow broadcast consumption (--broadcast=false forbids it)"},
		&cli.BoolFlag{Name: "consume-enable", Usage: "allow consumption (--consume-enable=false stops the group)"},
	}
	if create {
		fs = append(fs, opsFlagBroker)
	}
	return fs
}

func opsGroupSpec(c *cli.Context) (admin.GroupSpec, error) {
	s := admin.GroupSpec{Group: c.Args().First()}
	if c.IsSet("retry-max") {
		v := c.Int("retry-max")
		if v < -1 || v > 1000 {
			return s, opsUsageError("--retry-max %d: want -1 to 1000", v)
		}
		r := int32(v)
		s.RetryMaxTimes = &r
	}
	if c.IsSet("broadcast") {
		b := c.Bool("broadcast")
		s.Broadcast = &b
	}
	if c.IsSet("consume-enable") {
		b := c.Bool("consume-enable")
		s.ConsumeEnable = &b
	}
	return s, nil
}

func opsGroupCommand() *cli.Command {
	create := opsLeaf{
		name: "create", usage: "create a consumer group on every broker (or those given by --broker)", args: "<group>", nargs: 1,
		flags: opsGroupFlags(true),
		check: func(c *cli.Context) error { _, err := opsGroupSpec(c); return err },
		act: func(e *opsEnv, c *cli.Context) error {
			s, _ := opsGroupSpec(c)
			s.Brokers = c.StringSlice("broker")
			brokers, err := e.admin.CreateGroup(e.ctx, s)
			if err != nil {
				return err
			}
			return opsDone(e, "created", "group", s.Group, brokers)
		},
	}
	update := opsLeaf{
		name: "update", usage: "change a group's retry max times, broadcast or consume enabled", args: "<group>", nargs: 1,
		flags: opsGroupFlags(false),
		check: func(c *cli.Context) error {
			s, err := opsGroupSpec(c)
			if err == nil && s.RetryMaxTimes == nil && s.Broadcast == nil && s.ConsumeEnable == nil {
				err = opsUsageError("update: nothing to change (give --retry-max, --broadcast or --consume-enable)")
			}
			return err
		},
		act: func(e *opsEnv, c *cli.Context) error {
			s, _ := opsGroupSpec(c)
			brokers, err := e.admin.UpdateGroup(e.ctx, s)
			if err != nil {
				return err
			}
			return opsDone(e, "updated", "group", s.Group, brokers)
		},
	}
	del := opsLeaf{
		name: "delete", usage: "delete a group's configuration and committed offsets", args: "<group>", nargs: 1,
		flags: []cli.Flag{opsFlagYes},
		check: func(c *cli.Context) error { return opsConfirm(c, "delete group "+c.Args().First()) },
		act: func(e *opsEnv, c *cli.Context) error {
			brokers, err := e.admin.DeleteGroup(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return opsDone(e, "deleted", "group", c.Args().First(), brokers)
		},
	}
	list := opsLeaf{
		name: "list", usage: "consumer groups with retry max times, broadcast, consume enabled and online clients", nargs: 0,
		act: func(e *opsEnv, c *cli.Context) error {
			gs, err := e.admin.Groups(e.ctx)
			if err != nil {
				return err
			}
			return e.result(map[string]any{"groups": gs}, func() error {
				var rows [][]string
				for _, g := range gs {
					rows = append(rows, []string{g.Group, strings.Join(g.Brokers, ","), strconv.FormatBool(g.ConsumeEnable),
						strconv.FormatBool(g.BroadcastEnable), opsI32(g.RetryMaxTimes), strconv.Itoa(g.OnlineClients)})
				}
				return e.table([]string{"GROUP", "BROKERS", "CONSUME-ENABLED", "BROADCAST", "RETRY-MAX", "ONLINE"}, rows)
			})
		},
	}
	describe := opsLeaf{
		name: "describe", usage: "a group's configuration, clients and total lag", args: "<group>", nargs: 1,
		act: func(e *opsEnv, c *cli.Context) error {
			g, err := e.admin.Group(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			cl, err := e.admin.Clients(e.ctx, g.Group)
			if err != nil {
				return err
			}
			lag, err := e.admin.Lag(e.ctx, g.Group, false)
			if err != nil {
				return err
			}
			doc := map[string]any{"group": g, "clients": cl.Clients, "subscriptions": cl.Subscriptions, "total_lag": lag.TotalLag}
			return e.result(doc, func() error {
				rows := [][]string{
					{"group", g.Group}, {"brokers", strings.Join(g.Brokers, ",")},
					{"consume_enable", strconv.FormatBool(g.ConsumeEnable)}, {"broadcast_enable", strconv.FormatBool(g.BroadcastEnable)},
					{"retry_max_times", opsI32(g.RetryMaxTimes)}, {"retry_queue_nums", opsI32(g.RetryQueueNums)},
					{"consume_from_min_enable", strconv.FormatBool(g.ConsumeFromMinEnable)},
					{"online_clients", strconv.Itoa(g.OnlineClients)}, {"subscriptions", opsSubs(cl.Subscriptions)},
					{"total_lag", opsI64(lag.TotalLag)},
				}
				return e.table([]string{"FIELD", "VALUE"}, rows)
			})
		},
	}
	lag := opsLeaf{
		name: "lag", usage: "a group's offsets and lag on every queue (or every group's with --all)", args: "<group>", nargs: -1,
		flags: []cli.Flag{
			&cli.BoolFlag{Name: "include-retry", Usage: "add the retry topic's and the dead-letter queue's rows"},
			&cli.BoolFlag{Name: "all", Usage: "every group"},
		},
		check: func(c *cli.Context) error {
			switch {
			case c.Bool("all") && c.NArg() > 0:
				return opsUsageError("lag: give a group or --all, not both")
			case !c.Bool("all") && c.NArg() != 1:
				return opsUsageError("lag: missing argument <group> (or --all)")
			}
			return nil
		},
		act: opsLag,
	}
	clients := opsLeaf{
		name: "clients", usage: "a group's online clients: id, address, version, subscriptions", args: "<group>", nargs: 1,
		act: func(e *opsEnv, c *cli.Context) error {
			cl, err := e.admin.Clients(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return e.result(cl, func() error {
				var rows [][]string
				subs := opsSubs(cl.Subscriptions)
				for _, x := range cl.Clients {
					rows = append(rows, []string{x.ClientID, x.Addr, x.Language, strconv.Itoa(int(x.Version)), strings.Join(x.Brokers, ","), subs})
				}
				return e.table([]string{"CLIENT-ID", "ADDR", "LANGUAGE", "VERSION", "BROKERS", "SUBSCRIPTIONS"}, rows)
			})
		},
	}
	return opsParent("group", "create, change, delete and inspect consumer groups; lag and clients",
		create.command(), update.command(), del.command(), list.command(), describe.command(), lag.command(), clients.command())
}

func opsSubs(subs []admin.Subscription) string {
	if len(subs) == 0 {
		return "-"
	}
	parts := make([]string, len(subs))
	for i, s := range subs {
		parts[i] = s.Topic + "(" + s.Expression + ")"
	}
	return strings.Join(parts, ",")
}

func opsLag(e *opsEnv, c *cli.Context) error {
	retry := c.Bool("include-retry")
	var lags []*admin.GroupLag
	if c.Bool("all") {
		gs, err := e.admin.Groups(e.ctx)
		if err != nil {
			return err
		}
		for _, g := range gs {
			l, err := e.admin.Lag(e.ctx, g.Group, retry)
			if err != nil {
				return err
			}
			lags = append(lags, l)
		}
	} else {
		l, err := e.admin.Lag(e.ctx, c.Args().First(), retry)
		if err != nil {
			return err
		}
		lags = append(lags, l)
	}
	var doc any = lags[0]
	var total int64
	for _, l := range lags {
		total += l.TotalLag
	}
	if c.Bool("all") {
		doc = map[string]any{"groups": lags, "total_lag": total}
	}
	return e.result(doc, func() error {
		header := []string{"TOPIC", "BROKER", "QUEUE", "BROKER-OFFSET", "CONSUMER-OFFSET", "LAG", "INFLIGHT", "LAST-CONSUMED", "CLIENT"}
		if c.Bool("all") {
			header = append([]string{"GROUP"}, header...)
		}
		var rows [][]string
		for _, l := range lags {
			for _, q := range l.Queues {
				inflight := "-"
				if q.Inflight != nil {
					inflight = opsI64(*q.Inflight)
				}
				client := q.Client
				if client == "" {
					client = "-"
				}
				row := []string{q.Topic, q.Broker, opsI32(q.QueueID), opsI64(q.BrokerOffset), opsI64(q.ConsumerOffset),
					opsI64(q.Lag), inflight, opsTime(q.LastConsumedMS), client}
				if c.Bool("all") {
					row = append([]string{l.Group}, row...)
				}
				rows = append(rows, row)
			}
		}
		totalRow := []string{"TOTAL", "", "", "", "", opsI64(total), "", "", ""}
		if c.Bool("all") {
			totalRow = append([]string{"TOTAL"}, append([]string{""}, totalRow[1:]...)...)
		}
		rows = append(rows, totalRow)
		return e.table(header, rows)
	})
}

func opsOffsetCommand() *cli.Command {
	reset := opsLeaf{
		name: "reset", usage: "move a group's committed offsets on a topic (a dry run unless --execute)", args: "<group>", nargs: 1,
		flags: []cli.Flag{
			&cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "the topic (required)"},
			&cli.BoolFlag{Name: "to-earliest", Usage: "to each queue's first offset"},
			&cli.BoolFlag{Name: "to-latest", Usage: "to each queue's end (skip everything stored)"},
			&cli.StringFlag{Name: "to-time", Usage: "to the first message stored at or after this time (RFC 3339 or ms)"},
			&cli.Int64Flag{Name: "to-offset", Usage: "to this offset on every queue (clamped to each queue's range)"},
			&cli.BoolFlag{Name: "execute", Usage: "apply the reset (the group's consumers must be stopped)"},
			opsFlagYes,
		},
		check: func(c *cli.Context) error {
			if c.String("topic") == "" {
				return opsUsageError("reset: --topic is required")
			}
			n := 0
			for _, f := range []string{"to-earliest", "to-latest", "to-time", "to-offset"} {
				if c.IsSet(f) {
					n++
				}
			}
			if n != 1 {
				return opsUsageError("reset: give exactly one of --to-earliest, --to-latest, --to-time, --to-offset")
			}
			if c.IsSet("to-time") {
				if _, err := opsParseTime(c.String("to-time")); err != nil {
					return opsUsageError("--to-time: %v", err)
				}
			}
			if c.Bool("execute") {
				return opsConfirm(c, "reset offsets of group "+c.Args().First())
			}
			return nil
		},
		act: func(e *opsEnv, c *cli.Context) error {
			r := admin.OffsetReset{Group: c.Args().First(), Topic: c.String("topic"), Execute: c.Bool("execute")}
			switch {
			case c.IsSet("to-earliest"):
				r.To = admin.ResetEarliest
			case c.IsSet("to-latest"):
				r.To = admin.ResetLatest
			case c.IsSet("to-time"):
				t, _ := opsParseTime(c.String("to-time"))
				r.To, r.Value = admin.ResetTime, t.UnixMilli()
			default:
				r.To, r.Value = admin.ResetOffset, c.Int64("to-offset")
			}
			res, err := e.admin.ResetOffsets(e.ctx, r)
			if err != nil {
				return err
			}
			if !res.Executed {
				fmt.Fprintln(e.errw, "dry run: nothing changed; add --execute --yes to apply")
			}
			return e.result(res, func() error {
				var rows [][]string
				for _, o := range res.Offsets {
					cur := "-"
					if o.Current >= 0 {
						cur = opsI64(o.Current)
					}
					rows = append(rows, []string{res.Topic, o.Broker, opsI32(o.QueueID), cur, opsI64(o.New)})
				}
				return e.table([]string{"TOPIC", "BROKER", "QUEUE", "CURRENT", "NEW"}, rows)
			})
		},
	}
	return opsParent("offset", "consumer offsets", reset.command())
}
