// Command ferry is the one Ferry binary: `ferry server` runs a name server
// and a broker in one process; `ferry namesrv` and `ferry broker run` run
// them apart; the other commands are operator tools.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/namesrv"
	"github.com/ferrymq/ferry/remoting"
	"github.com/ferrymq/ferry/server"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args with the given standard streams and
// returns the exit code: 0 success, 1 failure, 2 usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "ferry",
		Usage:     "a RocketMQ-compatible message broker",
		Version:   broker.Version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			{
				Name:   "server",
				Usage:  "run a name server and a broker in one process (data in ./data by default)",
				Flags:  serverFlags(true, true),
				Action: func(c *cli.Context) error { return serve(c, true, true) },
			},
			{
				Name:   "namesrv",
				Usage:  "run a name server",
				Flags:  serverFlags(true, false),
				Action: func(c *cli.Context) error { return serve(c, true, false) },
			},
			{
				Name:  "broker",
				Usage: "run a broker (ferry broker run), or ask one: status, config, drain, undrain",
				Subcommands: []*cli.Command{{
					Name:   "run",
					Usage:  "run a broker that registers with the name servers given by --namesrv",
					Flags:  serverFlags(false, true),
					Action: func(c *cli.Context) error { return serve(c, false, true) },
				}},
				// Before `run` existed, `ferry broker --namesrv …` ran a
				// broker: it still does. Alone, `ferry broker` shows help.
				Flags:              serverFlags(false, true),
				Action:             brokerRootAction,
				CustomHelpTemplate: brokerHelpTemplate,
			},
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   opsOnUsageError,
		Action:         opsRootAction,
	}
	app.Commands = append(app.Commands, benchCommand(), certCommand())
	extra := extraCommands()
	app.Commands = mergeCommands(app.Commands, extra)
	if err := app.Run(opsReorder(args, extra)); err != nil {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, "ferry:", msg)
		}
		if ec, ok := err.(cli.ExitCoder); ok {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// brokerHelpTemplate is urfave/cli's subcommand help without the options,
// which belong to `ferry broker run`.
const brokerHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   ferry broker command [command options]{{if .VisibleCommands}}

COMMANDS:{{template "visibleCommandCategoryTemplate" .}}{{end}}

Run a broker with ferry broker run (see ferry broker run --help for its flags).
`

// brokerRootAction serves `ferry broker` without a subcommand: with
// server flags it runs a broker (what it did before `ferry broker run`),
// alone it shows the subcommands.
func brokerRootAction(c *cli.Context) error {
	if c.Args().Present() {
		return opsUsageError("broker: unknown command %q (see ferry broker --help)", c.Args().First())
	}
	if c.NumFlags() > 0 {
		fmt.Fprintln(c.App.ErrWriter, "ferry: `ferry broker <flags>` is `ferry broker run <flags>`; running a broker")
		return serve(c, false, true)
	}
	_ = cli.ShowSubcommandHelp(c)
	return opsUsageError("broker: a command is needed (run a broker with ferry broker run)")
}

// extraCommands is where operator tools plug in.
var extraCommands = opsCommands

// serve runs the name server and/or the broker until SIGTERM or SIGINT; a
// second signal exits at once.
func serve(c *cli.Context, withNamesrv, withBroker bool) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if withBroker {
		// Refuse a bad broker configuration before anything starts, or
		// is printed as if it would.
		check := cfg.Broker
		if err := check.Validate(); err != nil {
			return cli.Exit(err.Error(), 2)
		}
	}
	if c.Bool("print-config") {
		return printConfig(c.App.Writer, cfg)
	}
	log := newLogger(cfg.Log)
	cfg.Runtime.apply(log)
	serverTLS, err := cfg.TLS.server(log)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}

	cfg.shareACL(withNamesrv, withBroker)
	run := server.Config{Logger: log, ShutdownTimeout: cfg.Broker.ShutdownTimeout.D()}
	if withNamesrv {
		ctl, _ := cfg.Namesrv.controller() // checked by loadConfig
		run.Namesrv = &namesrv.Config{
			ListenAddr:   net.JoinHostPort(cfg.Namesrv.Host, strconv.Itoa(cfg.Namesrv.Port)),
			BrokerExpiry: cfg.Namesrv.BrokerExpiry.D(),
			Logger:       log.With().Str("component", "namesrv").Logger(),
			Remoting: remoting.ServerConfig{IdleTimeout: cfg.Namesrv.IdleTimeout.D(), ReadTimeout: cfg.Namesrv.ReadTimeout.D(),
				MaxConns: cfg.Namesrv.MaxConnections, MaxConnsPerAddr: cfg.Namesrv.MaxConnectionsPerAddr},
			Controller:    ctl,
			ACLFile:       cfg.Namesrv.ACLFile,
			ClusterSecret: cfg.Cluster.Secret,
			TLS:           serverTLS,
		}
	}
	if withBroker {
		run.Broker = &cfg.Broker
		run.BrokerOptions = []broker.Option{broker.WithLogger(log.With().Str("component", "broker").Logger()),
			broker.WithClusterSecret(cfg.Cluster.Secret), broker.WithTLS(serverTLS), broker.WithNamesrvTLS(cfg.TLS.client())}
	}

	// The first SIGTERM or SIGINT stops gracefully; a second exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case s := <-sig:
			log.Info().Str("signal", s.String()).Msg("shutting down (a second signal exits at once)")
			cancel()
		case <-done:
			return
		}
		select {
		case <-sig:
			log.Warn().Msg("second signal: exiting now")
			os.Exit(1)
		case <-done:
		}
	}()
	if err := server.Run(ctx, run); err != nil {
		if ctx.Err() == nil {
			return cli.Exit(err.Error(), 1) // a failure to start
		}
		return cli.Exit("", 1) // a failed shutdown, logged
	}
	return nil
}
