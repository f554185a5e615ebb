package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/client/admin"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controller/controlclient"
)

var opsFlagBroker = &cli.StringSliceFlag{Name: "broker", Aliases: []string{"b"}, Usage: "broker name or address (repeat for several; default all)"}

func opsClusterCommand() *cli.Command {
	return opsParent("cluster", "the brokers of the cluster",
		opsLeaf{
			name: "list", usage: "brokers with address, role, version, writable, disk use and in/out msg/s; with the control plane, their group's epoch, in-sync set and each slave's lag", nargs: 0,
			flags: []cli.Flag{&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "measure msg/s over this interval (0: average since start)"}},
			act: func(e *opsEnv, c *cli.Context) error {
				bs, err := e.admin.Brokers(e.ctx, c.Duration("interval"))
				if err != nil {
					return err
				}
				cp, err := opsControlPlane(e)
				if err != nil {
					return err
				}
				if cp == nil {
					return e.result(map[string]any{"brokers": bs}, func() error {
						return e.table(opsClusterHeader(false), opsClusterRows(bs, nil))
					})
				}
				out := make([]opsClusterBroker, len(bs))
				for i, b := range bs {
					out[i].BrokerStatus = b
					if g := cp.group(b.Cluster, b.BrokerName); g != nil {
						out[i].Epoch, out[i].InSync = &g.Epoch, g.InSync
					}
					if lb, ls, ok := opsSlaveLag(bs, b); ok {
						out[i].LagBytes, out[i].LagSeconds = &lb, &ls
					}
				}
				return e.result(map[string]any{"brokers": out, "control_plane": cp}, func() error {
					return e.table(opsClusterHeader(true), opsClusterRows(bs, cp))
				})
			},
		}.command(),
	)
}

// opsClusterBroker is a broker of `cluster list -o json` with its group's
// control-plane state, when the name servers run the control plane.
type opsClusterBroker struct {
	admin.BrokerStatus
	Epoch  *int64  `json:"epoch,omitempty"`
	InSync []int64 `json:"in_sync,omitempty"`
	// LagBytes and LagSeconds are a slave's lag (opsSlaveLag).
	LagBytes   *int64   `json:"lag_bytes,omitempty"`
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
}

// opsSlaveLag is a slave's lag: what its master's log holds beyond the
// slave's acknowledged end, and how long ago the slave last held the
// master's end, as the master reports them; as the slave reports them
// when its master does not answer. ok is false for a master or a broker
// without replication.
func opsSlaveLag(bs []admin.BrokerStatus, b admin.BrokerStatus) (lagBytes int64, lagSeconds float64, ok bool) {
	if b.Replication == nil || b.Replication.Role != "slave" {
		return 0, 0, false
	}
	for _, m := range bs {
		if m.Cluster != b.Cluster || m.BrokerName != b.BrokerName || m.Replication == nil || m.Replication.Role != "master" {
			continue
		}
		for _, r := range m.Replication.Replicas {
			if r.ID == b.Replication.ReplicaID {
				return r.LagBytes, r.LagSeconds, true
			}
		}
	}
	return b.Replication.LagBytes, b.Replication.LagSeconds, true
}

func opsClusterHeader(controlPlane bool) []string {
	h := []string{"CLUSTER", "BROKER", "ID", "ADDR", "ROLE"}
	if controlPlane {
		h = append(h, "EPOCH", "IN-SYNC", "LAG-BYTES", "LAG-S")
	}
	return append(h, "VERSION", "WRITABLE", "DISK-USED", "IN-MSG/S", "OUT-MSG/S")
}

func opsClusterRows(bs []admin.BrokerStatus, cp *opsControlState) [][]string {
	rows := make([][]string, 0, len(bs))
	for _, b := range bs {
		row := []string{b.Cluster, b.BrokerName, strconv.FormatInt(b.BrokerID, 10), b.Addr, b.Role}
		if cp != nil {
			epoch, inSync := "-", "-"
			if g := cp.group(b.Cluster, b.BrokerName); g != nil {
				epoch, inSync = strconv.FormatInt(g.Epoch, 10), controller.FormatSet(g.InSync)
			}
			lagBytes, lagSecs := "-", "-"
			if lb, ls, ok := opsSlaveLag(bs, b); ok {
				lagBytes, lagSecs = strconv.FormatInt(lb, 10), strconv.FormatFloat(ls, 'f', 1, 64)
			}
			row = append(row, epoch, inSync, lagBytes, lagSecs)
		}
		if b.Error != "" {
			row = append(row, "-", "unreachable", "-", "-", "-")
		} else {
			row = append(row, b.Version, opsWritable(b), opsPercent(b.DiskUsedRatio), opsRate(b.MsgInPerSec), opsRate(b.MsgOutPerSec))
		}
		rows = append(rows, row)
	}
	return rows
}

// opsControlState is the control plane's state as `cluster list` shows it.
type opsControlState struct {
	controller.StateReply
}

func (s *opsControlState) group(cluster, brokerName string) *controller.Group {
	for _, g := range s.Groups {
		if g.Cluster == cluster && g.BrokerName == brokerName {
			return g
		}
	}
	return nil
}

// opsControlPlane reads the control plane's state from the name servers;
// nil when they run none or the endpoint is a broker's HTTP API.
func opsControlPlane(e *opsEnv) (*opsControlState, error) {
	if strings.HasPrefix(e.endpoint, "http://") || strings.HasPrefix(e.endpoint, "https://") {
		return nil, nil
	}
	rc := e.admin.Remoting()
	if rc == nil {
		return nil, nil
	}
	addrs := strings.FieldsFunc(e.endpoint, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
	st, err := controlclient.New(rc, addrs, 0).State(e.ctx, "", "")
	switch {
	case errors.Is(err, controlclient.ErrNoController):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return &opsControlState{st}, nil
}

func opsWritable(b admin.BrokerStatus) string {
	if b.Writable {
		return "yes"
	}
	if b.NotWritableReason != "" {
		return "no (" + b.NotWritableReason + ")"
	}
	return "no"
}

func opsPercent(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }
func opsRate(r float64) string    { return strconv.FormatFloat(r, 'f', 1, 64) }

func opsBrokerCommand() *cli.Command {
	status := opsLeaf{
		name: "status", usage: "one line per broker: version, flush, writable, uptime, disk, commitlog offsets, counts", nargs: 0,
		flags: []cli.Flag{opsFlagBroker},
		act: func(e *opsEnv, c *cli.Context) error {
			bs, err := e.admin.Brokers(e.ctx, 0)
			if err != nil {
				return err
			}
			if sel := c.StringSlice("broker"); len(sel) > 0 {
				var keep []admin.BrokerStatus
				for _, b := range bs {
					if opsHas(sel, b.BrokerName) || opsHas(sel, b.Addr) {
						keep = append(keep, b)
					}
				}
				if len(keep) == 0 {
					return fmt.Errorf("no such broker: %s", strings.Join(sel, ", "))
				}
				bs = keep
			}
			return e.result(map[string]any{"brokers": bs}, func() error {
				var rows [][]string
				for _, b := range bs {
					if b.Error != "" {
						rows = append(rows, []string{b.BrokerName, b.Addr, "unreachable: " + b.Error})
						continue
					}
					rows = append(rows, []string{b.BrokerName, b.Addr, b.Version, b.Flush, opsWritable(b),
						(time.Duration(b.UptimeSeconds) * time.Second).String(), opsPercent(b.DiskUsedRatio),
						strconv.FormatInt(b.CommitlogMinOffset, 10), strconv.FormatInt(b.CommitlogMaxOffset, 10),
						strconv.Itoa(b.Topics), strconv.Itoa(b.Groups), strconv.Itoa(b.Producers), strconv.Itoa(b.Consumers)})
				}
				return e.table([]string{"BROKER", "ADDR", "VERSION", "FLUSH", "WRITABLE", "UPTIME", "DISK-USED",
					"COMMITLOG-MIN", "COMMITLOG-MAX", "TOPICS", "GROUPS", "PRODUCERS", "CONSUMERS"}, rows)
			})
		},
	}
	configGet := opsLeaf{
		name: "get", usage: "the configuration in force (optionally only some keys)", args: "[key...]", nargs: -1,
		flags: []cli.Flag{opsFlagBroker},
		act: func(e *opsEnv, c *cli.Context) error {
			cfgs, err := e.admin.BrokerConfigs(e.ctx, c.StringSlice("broker")...)
			if err != nil {
				return err
			}
			keys := c.Args().Slice()
			for i := range cfgs {
				for _, k := range keys {
					if _, ok := cfgs[i].Config[k]; !ok {
						return fmt.Errorf("broker %s has no config key %q", cfgs[i].BrokerName, k)
					}
				}
				if len(keys) > 0 {
					m := map[string]string{}
					for _, k := range keys {
						m[k] = cfgs[i].Config[k]
					}
					cfgs[i].Config = m
				}
			}
			return e.result(map[string]any{"brokers": cfgs}, func() error {
				var rows [][]string
				for _, b := range cfgs {
					ks := make([]string, 0, len(b.Config))
					for k := range b.Config {
						ks = append(ks, k)
					}
					sort.Strings(ks)
					for _, k := range ks {
						rows = append(rows, []string{b.BrokerName, k, b.Config[k]})
					}
				}
				return e.table([]string{"BROKER", "KEY", "VALUE"}, rows)
			})
		},
	}
	configSet := opsLeaf{
		name: "set", usage: "change run-time configurable keys (kept across restarts)", args: "key=value...", nargs: -1,
		flags: []cli.Flag{opsFlagBroker},
		check: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return opsUsageError("set: missing key=value")
			}
			for _, a := range c.Args().Slice() {
				if k, _, ok := strings.Cut(a, "="); !ok || k == "" {
					return opsUsageError("set: %q is not key=value", a)
				}
			}
			return nil
		},
		act: func(e *opsEnv, c *cli.Context) error {
			kv := map[string]string{}
			for _, a := range c.Args().Slice() {
				k, v, _ := strings.Cut(a, "=")
				kv[k] = v
			}
			if err := e.admin.SetBrokerConfig(e.ctx, kv, c.StringSlice("broker")...); err != nil {
				return err
			}
			fmt.Fprintln(e.errw, "changed, and kept across restarts (the broker's kept changes win over its config file)")
			return e.result(map[string]any{"changed": kv}, func() error {
				for _, k := range opsKeys(kv) {
					fmt.Fprintf(e.out, "%s = %s\n", k, kv[k])
				}
				return nil
			})
		},
	}
	drain := func(on bool) opsLeaf {
		name, usage := "undrain", "accept sends again"
		if on {
			name, usage = "drain", "stop accepting sends (queues turn read-only, consumers drain them)"
		}
		l := opsLeaf{
			name: name, usage: usage, nargs: 0, flags: []cli.Flag{opsFlagBroker},
			act: func(e *opsEnv, c *cli.Context) error {
				sel := c.StringSlice("broker")
				var err error
				if on {
					err = e.admin.Drain(e.ctx, sel...)
				} else {
					err = e.admin.Undrain(e.ctx, sel...)
				}
				if err != nil {
					return err
				}
				target := "all brokers"
				if len(sel) > 0 {
					target = strings.Join(sel, ", ")
				}
				return e.result(map[string]any{"drained": on, "brokers": sel}, func() error {
					_, err := fmt.Fprintf(e.out, "%sed %s\n", name, target)
					return err
				})
			},
		}
		if on {
			l.flags = append(l.flags, opsFlagYes)
			l.check = func(c *cli.Context) error { return opsConfirm(c, "drain") }
		}
		return l
	}
	elect := opsLeaf{
		name: "elect", usage: "planned switch-over of a replicated broker group's master to --to (an in-sync, live replica); without --to, an election only if the master's lease ran out",
		args: "BROKER-NAME", nargs: 1,
		flags: []cli.Flag{&cli.Int64Flag{Name: "to", Usage: "replica id of the new master"},
			&cli.StringFlag{Name: "cluster", Value: "DefaultCluster", Usage: "the group's cluster"}},
		act: func(e *opsEnv, c *cli.Context) error {
			rc := e.admin.Remoting()
			if rc == nil || strings.HasPrefix(e.endpoint, "http") {
				return fmt.Errorf("broker elect talks to the name servers' control plane: give --namesrv ip:port")
			}
			addrs := strings.FieldsFunc(e.endpoint, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
			var target *int64
			if c.IsSet("to") {
				to := c.Int64("to")
				target = &to
			}
			dec, err := controlclient.New(rc, addrs, 0).Elect(e.ctx, c.String("cluster"), c.Args().First(), target)
			if err != nil {
				return fmt.Errorf("elect: %w", err)
			}
			return e.result(dec, func() error {
				row := []string{c.Args().First(), strconv.FormatBool(dec.Changed), "-", "-", dec.Reason}
				if dec.Group != nil {
					row[2], row[3] = strconv.FormatInt(dec.Group.MasterID, 10), strconv.FormatInt(dec.Group.Epoch, 10)
				}
				return e.table([]string{"BROKER", "CHANGED", "MASTER", "EPOCH", "REASON"}, [][]string{row})
			})
		},
	}
	return opsParent("broker", "broker status, configuration, drain and master switch-over",
		elect.command(),
		status.command(),
		opsParent("config", "read or change a broker's configuration", configGet.command(), configSet.command()),
		drain(true).command(), drain(false).command(),
	)
}

func opsHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func opsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
