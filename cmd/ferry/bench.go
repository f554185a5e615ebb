package main

import (
	"os"

	"github.com/rs/zerolog"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/bench/layout"
	"github.com/ferrymq/ferry/bench/load"
)

// benchCommand is `ferry bench produce|consume|layout`; each subcommand
// parses its own flags (`ferry bench produce -h`).
func benchCommand() *cli.Command {
	sub := func(name, usage string, main func(args []string) int) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, SkipFlagParsing: true,
			Action: func(c *cli.Context) error {
				if code := main(c.Args().Slice()); code != 0 {
					return cli.Exit("", code)
				}
				return nil
			},
		}
	}
	return &cli.Command{
		Name:  "bench",
		Usage: "load generators and the storage-layout benchmark",
		Subcommands: []*cli.Command{
			sub("produce", "produce flat out or at a rate; prints throughput and send latency percentiles", func(a []string) int {
				loadGeneratorGC()
				return load.Main("produce", a, os.Stdout, os.Stderr)
			}),
			sub("consume", "produce and consume in one process; adds end-to-end latency (born to delivered)", func(a []string) int {
				loadGeneratorGC()
				return load.Main("consume", a, os.Stdout, os.Stderr)
			}),
			sub("layout", "compare the shared commitlog with a Kafka-style per-partition layout", func(a []string) int {
				return layout.Main(a, os.Stdout, os.Stderr)
			}),
		},
	}
}

// loadGeneratorGC gives the load generator the servers' collector setting
// (unless GOGC or GOMEMLIMIT is set): with Go's default it collects every
// few MB, and each pause delays the sends and receipts it is timing.
func loadGeneratorGC() {
	defaultFileConfig().Runtime.apply(zerolog.Nop())
}
