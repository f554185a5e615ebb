package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
)

var opsFlagTopic = &cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "the topic (required)"}

// opsMaxLine bounds a line of msg send's stdin: the broker's default
// largest message (4 MiB), newline included.
const opsMaxLine = 4 << 20

func opsNeedTopic(c *cli.Context) error {
	if c.String("topic") == "" {
		return opsUsageError("%s: --topic is required", c.Command.Name)
	}
	return nil
}

func opsMsgCommand() *cli.Command {
	send := opsLeaf{
		name: "send", usage: "send one message per line of stdin (a smoke test)", nargs: 0,
		flags: []cli.Flag{opsFlagTopic,
			&cli.StringFlag{Name: "tags", Usage: "tag of every message"},
			&cli.StringFlag{Name: "keys", Usage: "keys of every message (comma-separated)"},
		},
		check: opsNeedTopic,
		act: func(e *opsEnv, c *cli.Context) error {
			var keys []string
			for _, k := range strings.Split(c.String("keys"), ",") {
				if k = strings.TrimSpace(k); k != "" {
					keys = append(keys, k)
				}
			}
			sender, err := e.admin.NewSender(e.ctx, c.String("topic"))
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(e.in)
			sc.Buffer(make([]byte, 64<<10), opsMaxLine)
			var sent []admin.SendReceipt
			for err == nil && sc.Scan() {
				var r admin.SendReceipt
				if r, err = sender.Send(e.ctx, admin.OutMessage{Body: []byte(sc.Text()), Tags: c.String("tags"), Keys: keys}); err == nil {
					sent = append(sent, r)
				}
			}
			switch serr := sc.Err(); {
			case err != nil:
				err = fmt.Errorf("line %d: %w", len(sent)+1, err)
			case errors.Is(serr, bufio.ErrTooLong):
				err = fmt.Errorf("line %d of stdin is longer than %d bytes (a message's most): stopped there", len(sent)+1, opsMaxLine-1)
			case serr != nil:
				err = fmt.Errorf("reading stdin: %w", serr)
			}
			// What was sent is said whatever stopped the rest.
			fmt.Fprintf(e.errw, "sent %d messages to %s\n", len(sent), c.String("topic"))
			if err != nil {
				return err
			}
			if sent == nil {
				sent = []admin.SendReceipt{}
			}
			return e.result(map[string]any{"sent": sent}, func() error {
				var rows [][]string
				for _, r := range sent {
					rows = append(rows, []string{r.MsgID, r.Broker, opsI32(r.QueueID), opsI64(r.QueueOffset)})
				}
				return e.table([]string{"MSG-ID", "BROKER", "QUEUE", "QUEUE-OFFSET"}, rows)
			})
		},
	}
	consume := opsLeaf{
		name: "consume", usage: "print a topic's messages: bodies, or JSON Lines with -o json (a smoke test)", nargs: 0,
		flags: []cli.Flag{opsFlagTopic,
			&cli.StringFlag{Name: "group", Aliases: []string{"g"}, Usage: "consumer group whose offsets to start from and commit (default: none; nothing is committed)"},
			&cli.BoolFlag{Name: "from-beginning", Usage: "start at each queue's first message (default: the group's offsets, else only new messages)"},
			&cli.IntFlag{Name: "max", Usage: "stop after this many messages, waiting up to --timeout for them"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep waiting for new messages until interrupted"},
			&cli.BoolFlag{Name: "no-commit", Usage: "do not commit the offsets reached"},
		},
		check: func(c *cli.Context) error {
			if c.Int("max") < 0 {
				return opsUsageError("--max must not be negative")
			}
			return opsNeedTopic(c)
		},
		follow: func(c *cli.Context) bool { return c.Bool("follow") },
		act: func(e *opsEnv, c *cli.Context) error {
			group := c.String("group")
			spec := admin.ConsumeSpec{Topic: c.String("topic"), Group: group, FromBeginning: c.Bool("from-beginning"),
				Max: c.Int("max"), Follow: c.Bool("follow") || c.Int("max") > 0, Commit: group != "" && !c.Bool("no-commit")}
			enc := json.NewEncoder(e.out)
			enc.SetEscapeHTML(false)
			n, err := e.admin.Consume(e.ctx, spec, func(m admin.MessageView) error {
				if e.json {
					return enc.Encode(m)
				}
				_, err := fmt.Fprintln(e.out, string(m.Body))
				return err
			})
			if group == "" {
				group = "none, nothing committed"
			}
			fmt.Fprintf(e.errw, "consumed %d messages (group %s)\n", n, group)
			return err
		},
	}
	get := opsLeaf{
		name: "get", usage: "one message by id (the producer's id or the broker's offset id)", args: "<msgId>", nargs: 1,
		act: func(e *opsEnv, c *cli.Context) error {
			m, err := e.admin.Message(e.ctx, c.Args().First())
			if err != nil {
				return err
			}
			return e.result(m, func() error { return opsMessageTable(e, *m) })
		},
	}
	query := opsLeaf{
		name: "query", usage: "messages of a topic by key (from the key index)", nargs: 0,
		flags: []cli.Flag{opsFlagTopic,
			&cli.StringFlag{Name: "key", Aliases: []string{"k"}, Usage: "the key (required)"},
			&cli.StringFlag{Name: "begin", Usage: "stored at or after (RFC 3339 or ms)"},
			&cli.StringFlag{Name: "end", Usage: "stored at or before (RFC 3339 or ms)"},
			&cli.IntFlag{Name: "max", Value: 32, Usage: "at most this many"},
		},
		check: func(c *cli.Context) error {
			if err := opsNeedTopic(c); err != nil {
				return err
			}
			if c.String("key") == "" {
				return opsUsageError("query: --key is required")
			}
			for _, f := range []string{"begin", "end"} {
				if _, err := opsParseTime(c.String(f)); err != nil {
					return opsUsageError("--%s: %v", f, err)
				}
			}
			return nil
		},
		act: func(e *opsEnv, c *cli.Context) error {
			begin, _ := opsParseTime(c.String("begin"))
			end, _ := opsParseTime(c.String("end"))
			ms, err := e.admin.QueryMessages(e.ctx, c.String("topic"), c.String("key"), begin, end, c.Int("max"))
			if err != nil {
				return err
			}
			return e.result(map[string]any{"messages": ms}, func() error {
				var rows [][]string
				for _, m := range ms {
					rows = append(rows, []string{m.MsgID, m.Broker, opsI32(m.QueueID), opsI64(m.QueueOffset), opsDash(m.Tags), opsDash(m.Keys),
						opsTime(m.StoreMS), strconv.Itoa(len(m.Body))})
				}
				return e.table([]string{"MSG-ID", "BROKER", "QUEUE", "QUEUE-OFFSET", "TAGS", "KEYS", "STORED", "BODY-SIZE"}, rows)
			})
		},
	}
	resend := opsLeaf{
		name: "resend", usage: "send a stored message again, to its original topic or --topic", args: "<msgId>", nargs: 1,
		flags: []cli.Flag{&cli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "send to this topic instead"}},
		act: func(e *opsEnv, c *cli.Context) error {
			r, err := e.admin.Resend(e.ctx, c.Args().First(), c.String("topic"))
			if err != nil {
				return err
			}
			return e.result(r, func() error {
				return e.table([]string{"MSG-ID", "TOPIC", "BROKER", "QUEUE", "QUEUE-OFFSET"},
					[][]string{{r.MsgID, r.Topic, r.Broker, opsI32(r.QueueID), opsI64(r.QueueOffset)}})
			})
		},
	}
	return opsParent("msg", "send, consume, look up and resend messages",
		send.command(), consume.command(), get.command(), query.command(), resend.command())
}

func opsDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// opsMessageTable prints one message as FIELD VALUE rows.
func opsMessageTable(e *opsEnv, m admin.MessageView) error {
	rows := [][]string{
		{"msg_id", m.MsgID}, {"offset_msg_id", m.OffsetMsgID}, {"topic", m.Topic}, {"broker", m.Broker},
		{"queue_id", opsI32(m.QueueID)}, {"queue_offset", opsI64(m.QueueOffset)}, {"commitlog_offset", opsI64(m.CommitlogOffset)},
		{"tags", opsDash(m.Tags)}, {"keys", opsDash(m.Keys)}, {"born", opsTime(m.BornMS)}, {"stored", opsTime(m.StoreMS)},
		{"born_host", m.BornHost}, {"store_host", m.StoreHost}, {"reconsume_times", opsI32(m.ReconsumeTimes)},
	}
	for _, k := range opsKeys(m.Properties) {
		rows = append(rows, []string{"property." + k, m.Properties[k]})
	}
	rows = append(rows, []string{"body_size", strconv.Itoa(len(m.Body))}, []string{"body", opsBodyText(m.Body)})
	return e.table([]string{"FIELD", "VALUE"}, rows)
}

// opsBodyText shows a body on one line: quoted when it is not plain text.
func opsBodyText(b []byte) string {
	s := string(b)
	if strconv.CanBackquote(s) && !strings.ContainsAny(s, "\t") {
		return s
	}
	return strconv.Quote(s)
}
