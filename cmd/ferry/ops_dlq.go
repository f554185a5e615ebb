package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
)

func opsDLQCommand() *cli.Command {
	list := opsLeaf{
		name: "list", usage: "a group's dead letters", args: "<group>", nargs: 1,
		flags: []cli.Flag{
			&cli.IntFlag{Name: "max", Value: 100, Usage: "at most this many"},
			&cli.BoolFlag{Name: "all", Usage: "every dead letter"},
		},
		act: func(e *opsEnv, c *cli.Context) error {
			max := c.Int("max")
			if c.Bool("all") {
				max = 0
			}
			dls, err := e.admin.DeadLetters(e.ctx, c.Args().First(), max)
			if err != nil {
				return err
			}
			return e.result(map[string]any{"group": c.Args().First(), "dead_letters": dls}, func() error {
				var rows [][]string
				for _, d := range dls {
					rows = append(rows, []string{d.Broker, opsI64(d.QueueOffset), d.MsgID, d.Topic, opsDash(d.Tags), opsDash(d.Keys),
						opsI32(d.ReconsumeTimes), opsTime(d.FailedAtMS), strconv.Itoa(d.BodySize), opsResent(d)})
				}
				return e.table([]string{"BROKER", "OFFSET", "MSG-ID", "TOPIC", "TAGS", "KEYS", "RECONSUMES", "FAILED-AT", "BODY-SIZE", "RESENT"}, rows)
			})
		},
	}
	show := opsLeaf{
		name: "show", usage: "dead letters in full, with their bodies (all, or those given by --ids)", args: "<group>", nargs: 1,
		flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "ids", Usage: "message ids (comma-separated or repeated)"},
			&cli.IntFlag{Name: "max", Value: 20, Usage: "without --ids, at most this many"},
		},
		act: func(e *opsEnv, c *cli.Context) error {
			group := c.Args().First()
			dls, err := e.admin.DeadLetters(e.ctx, group, 0)
			if err != nil {
				return err
			}
			ids := opsSplit(c.StringSlice("ids"))
			var pick []admin.DeadLetter
			if len(ids) > 0 {
				for _, id := range ids {
					found := false
					for _, d := range dls {
						if d.MsgID == id || d.OriginMsgID == id {
							pick, found = append(pick, d), true
							break
						}
					}
					if !found {
						return fmt.Errorf("%s is not in the dead-letter queue of %s", id, group)
					}
				}
			} else {
				pick = dls[:min(len(dls), c.Int("max"))]
			}
			views := []admin.MessageView{}
			for _, d := range pick {
				// By its offset id: the message id is shared with the
				// original and its retries.
				id := d.OffsetMsgID
				if id == "" {
					id = d.MsgID
				}
				m, err := e.admin.Message(e.ctx, id)
				if err != nil {
					return err
				}
				if d.ResentAtMS > 0 {
					if m.Properties == nil {
						m.Properties = map[string]string{}
					}
					m.Properties["(resent)"] = opsResent(d)
				}
				views = append(views, *m)
			}
			return e.result(map[string]any{"group": group, "messages": views}, func() error {
				for i, m := range views {
					if i > 0 {
						fmt.Fprintln(e.out)
					}
					if err := opsMessageTable(e, m); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	resend := opsLeaf{
		name: "resend", usage: "send dead letters back to their topics (or the retry topic with --to-retry); each is resent once", args: "<group>", nargs: 1,
		flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "ids", Usage: "message ids (comma-separated or repeated)"},
			&cli.BoolFlag{Name: "all", Usage: "every dead letter of the group"},
			&cli.BoolFlag{Name: "to-retry", Usage: "to the group's retry topic, with a fresh retry count"},
			opsFlagYes,
		},
		check: func(c *cli.Context) error {
			ids := opsSplit(c.StringSlice("ids"))
			switch {
			case len(ids) == 0 && !c.Bool("all"):
				return opsUsageError("resend: give --ids or --all")
			case len(ids) > 0 && c.Bool("all"):
				return opsUsageError("resend: give --ids or --all, not both")
			case c.Bool("all"):
				return opsConfirm(c, "resend every dead letter of "+c.Args().First())
			}
			return opsConfirm(c, fmt.Sprintf("resend %d dead letters of %s", len(ids), c.Args().First()))
		},
		act: func(e *opsEnv, c *cli.Context) error {
			r := admin.DLQResend{Group: c.Args().First(), IDs: opsSplit(c.StringSlice("ids")), All: c.Bool("all"), ToRetry: c.Bool("to-retry")}
			tty := isTerminal(e.errw)
			if tty {
				r.Progress = func(done, total int) { opsProgress(e, done, total) }
			}
			res, err := e.admin.ResendDeadLetters(e.ctx, r)
			if tty && r.Progress != nil {
				fmt.Fprintln(e.errw)
			}
			if err != nil {
				return err
			}
			return e.result(res, func() error {
				where := "their topics"
				if res.Target == "retry" {
					where = "the retry topic"
				}
				skipped := ""
				if res.Skipped > 0 {
					skipped = fmt.Sprintf(" (%d skipped: resent before)", res.Skipped)
				}
				_, err := fmt.Fprintf(e.out, "resent %d dead letters of %s to %s%s\n", res.Resent, res.Group, where, skipped)
				return err
			})
		},
	}
	return opsParent("dlq", "dead-letter queues: list, show, resend", list.command(), show.command(), resend.command())
}

// opsResent says when and where a dead letter was resent ("-": never).
func opsResent(d admin.DeadLetter) string {
	if d.ResentAtMS <= 0 {
		return "-"
	}
	return opsTime(d.ResentAtMS) + " to " + d.ResentTo
}

// opsProgress draws a one-line progress bar on a terminal.
func opsProgress(e *opsEnv, done, total int) {
	const width = 30
	if total <= 0 {
		return
	}
	n := min(width, done*width/total)
	fmt.Fprintf(e.errw, "\r[%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(" ", width-n), done, total)
}

// opsSplit flattens repeated and comma-separated values.
func opsSplit(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}
