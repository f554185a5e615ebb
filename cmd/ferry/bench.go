package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/bench/layout"
	"github.com/ferrymq/ferry/bench/load"
)

// benchCommand is `ferry bench produce|consume|layout`. The benchmarks
// define their flags with Go's flag package (they also run from tests and
// scripts); here each is offered as a urfave/cli flag, so that help and
// parsing read like every other command, and handed back to the benchmark
// as Go flag arguments.
func benchCommand() *cli.Command {
	sub := benchSubcommand
	return &cli.Command{
		Name:  "bench",
		Usage: "load generators and the storage-layout benchmark",
		Subcommands: []*cli.Command{
			sub("produce", "produce flat out or at a rate; prints throughput and send latency percentiles", load.FlagSet("produce"), func(a []string) int {
				loadGeneratorGC()
				return load.Main("produce", a, os.Stdout, os.Stderr)
			}),
			sub("consume", "produce and consume in one process; adds end-to-end latency (born to delivered)", load.FlagSet("consume"), func(a []string) int {
				loadGeneratorGC()
				return load.Main("consume", a, os.Stdout, os.Stderr)
			}),
			sub("layout", "compare the shared commitlog with a Kafka-style per-partition layout", layout.FlagSet(), func(a []string) int {
				return layout.Main(a, os.Stdout, os.Stderr)
			}),
		},
	}
}

// benchSubcommand is one benchmark: main runs it with Go flag arguments.
func benchSubcommand(name, usage string, fs *flag.FlagSet, main func(args []string) int) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, Flags: cliFlags(fs), OnUsageError: opsOnUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cli.Exit(fmt.Sprintf("bench %s takes no arguments, got %q", name, c.Args().Slice()), 2)
			}
			if code := main(goFlagArgs(c, fs)); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// cliFlags offers the flags of fs as urfave/cli flags of the same names,
// types, usage and defaults.
func cliFlags(fs *flag.FlagSet) []cli.Flag {
	var out []cli.Flag
	fs.VisitAll(func(f *flag.Flag) {
		var v any = f.DefValue
		if g, ok := f.Value.(flag.Getter); ok {
			v = g.Get()
		}
		switch v := v.(type) {
		case bool:
			out = append(out, &cli.BoolFlag{Name: f.Name, Usage: f.Usage, Value: v})
		case int:
			out = append(out, &cli.IntFlag{Name: f.Name, Usage: f.Usage, Value: v})
		case time.Duration:
			out = append(out, &cli.DurationFlag{Name: f.Name, Usage: f.Usage, Value: v})
		default:
			out = append(out, &cli.StringFlag{Name: f.Name, Usage: f.Usage, Value: f.DefValue})
		}
	})
	return out
}

// goFlagArgs turns the flags set on c back into arguments for fs.
func goFlagArgs(c *cli.Context, fs *flag.FlagSet) []string {
	var args []string
	fs.VisitAll(func(f *flag.Flag) {
		if c.IsSet(f.Name) {
			args = append(args, "-"+f.Name+"="+fmt.Sprint(c.Value(f.Name)))
		}
	})
	return args
}

// loadGeneratorGC gives the load generator the servers' collector setting
// (unless GOGC or GOMEMLIMIT is set): with Go's default it collects every
// few MB, and each pause delays the sends and receipts it is timing.
func loadGeneratorGC() {
	defaultFileConfig().Runtime.apply(zerolog.Nop())
}
