package main

// The operator commands: cluster, topic, group, offset, msg, dlq and
// broker, all built on admin.Admin.
//
// Conventions: data goes to stdout (a table, or with -o json one JSON
// document; JSON Lines for msg consume), progress and diagnostics to
// stderr, never colour, progress only on a terminal. Exit 0 is success, 1 a
// failure at run time, 2 a usage error (bad flags, missing arguments, a
// destructive command without --yes).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/client/admin"
)

// Global flags of every ops command.
var (
	opsFlagNamesrv = &cli.StringFlag{Name: "namesrv", Aliases: []string{"n"}, Value: "127.0.0.1:9876",
		Usage:   "name servers ip:port[;ip:port], or a broker's HTTP API as http://host:port",
		EnvVars: []string{"FERRY_NAMESRV", "NAMESRV_ADDR"}}
	opsFlagOutput    = &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table or json"}
	opsFlagTimeout   = &cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"}
	opsFlagNoHeaders = &cli.BoolFlag{Name: "no-headers", Usage: "leave out table headers"}
	opsFlagYes       = &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "confirm a destructive command"}
	opsFlagAccessKey = &cli.StringFlag{Name: "access-key", Usage: "ACL access key to authenticate with", EnvVars: []string{"FERRY_ACCESS_KEY"}}
	opsFlagSignReqs  = &cli.BoolFlag{Name: "sign-requests", Usage: "sign every request instead of authenticating each connection once (integrity of each request without TLS)", EnvVars: []string{"FERRY_SIGN_REQUESTS"}}
	opsFlagSecretKey = &cli.StringFlag{Name: "secret-key", Usage: "ACL secret key (prefer the env variable: flags show in ps)", EnvVars: []string{"FERRY_SECRET_KEY"}}
	opsFlagTLS       = &cli.BoolFlag{Name: "tls", Usage: "connect with TLS", EnvVars: []string{"FERRY_TLS"}}
	opsFlagCA        = &cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) to trust for --tls (default: system roots)", EnvVars: []string{"FERRY_CA"}}
	opsFlagInsecure  = &cli.BoolFlag{Name: "insecure-skip-verify", Usage: "--tls without verifying the server (development only)"}
	opsFlagCert      = &cli.StringFlag{Name: "client-cert", Usage: "client certificate (PEM) for servers that ask for one", EnvVars: []string{"FERRY_TLS_CLIENT_CERT"}}
	opsFlagKey       = &cli.StringFlag{Name: "client-key", Usage: "private key (PEM) of --client-cert", EnvVars: []string{"FERRY_TLS_CLIENT_KEY"}}
	opsFlagProfile   = &cli.StringFlag{Name: "profile", Usage: "credentials profile to use (default: [default], when the file has one)", EnvVars: []string{"FERRY_PROFILE"}}
	opsFlagCredsFile = &cli.StringFlag{Name: "credentials-file", Usage: "credentials profiles, TOML (default ~/.config/ferry/credentials)", EnvVars: []string{"FERRY_CREDENTIALS_FILE"}}
)

// freshFlags returns copies of fs. cli writes into a flag while it parses
// (its default, whether it was set), so two commands run at once in one
// process (the tests do) must not share the package's flag values.
func freshFlags(fs []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, len(fs))
	for i, f := range fs {
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer {
			out[i] = f
			continue
		}
		c := reflect.New(v.Elem().Type())
		c.Elem().Set(v.Elem())
		out[i] = c.Interface().(cli.Flag)
	}
	return out
}

func opsGlobalFlags() []cli.Flag {
	return []cli.Flag{opsFlagNamesrv, opsFlagOutput, opsFlagTimeout, opsFlagNoHeaders,
		opsFlagAccessKey, opsFlagSecretKey, opsFlagSignReqs, opsFlagProfile, opsFlagCredsFile, opsFlagTLS, opsFlagCA, opsFlagInsecure, opsFlagCert, opsFlagKey}
}

// opsSecurity is the admin options of the credential and TLS flags.
func opsSecurity(c *cli.Context) ([]admin.Option, error) {
	var opts []admin.Option
	ak, sk := c.String("access-key"), c.String("secret-key")
	if ak == "" && sk == "" {
		p, err := loadProfile(c.String("credentials-file"), c.String("profile"))
		if err != nil {
			return nil, opsUsageError("%v", err)
		}
		ak, sk = p.AccessKey, p.SecretKey
	}
	if (ak == "") != (sk == "") {
		return nil, opsUsageError("--access-key and --secret-key go together")
	}
	if ak != "" {
		opts = append(opts, admin.WithCredentials(ak, sk))
		if c.Bool("sign-requests") {
			opts = append(opts, admin.WithRequestSigning())
		}
	}
	if (c.String("client-cert") == "") != (c.String("client-key") == "") {
		return nil, opsUsageError("--client-cert and --client-key go together")
	}
	if c.Bool("tls") || c.String("ca") != "" || c.Bool("insecure-skip-verify") || c.String("client-cert") != "" {
		cfg, err := certs.Client(c.String("ca"), c.Bool("insecure-skip-verify"), c.String("client-cert"), c.String("client-key"))
		if err != nil {
			return nil, opsUsageError("tls: %v", err)
		}
		opts = append(opts, admin.WithTLS(cfg))
	}
	return opts, nil
}

// opsCommands is every operator command; main wires it into extraCommands.
func opsCommands() []*cli.Command {
	return []*cli.Command{
		opsClusterCommand(), opsTopicCommand(), opsGroupCommand(), opsOffsetCommand(), opsTxCommand(), opsProducerCommand(),
		opsMsgCommand(), opsDLQCommand(), opsBrokerCommand(),
	}
}

// opsUsageError is a usage error: exit code 2.
func opsUsageError(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), 2)
}

// opsParent is a command that only groups subcommands.
func opsParent(name, usage string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, Subcommands: subs,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return opsUsageError("%s: unknown command %q (see ferry %s --help)", name, c.Args().First(), name)
			}
			_ = cli.ShowSubcommandHelp(c)
			return opsUsageError("%s: a command is needed", name)
		},
		OnUsageError: opsOnUsageError,
	}
}

func opsOnUsageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err.Error(), 2)
}

// opsEnv is what an ops command runs with.
type opsEnv struct {
	ctx       context.Context
	admin     *admin.Admin
	out       io.Writer
	errw      io.Writer
	in        io.Reader
	json      bool
	noHeaders bool
	endpoint  string
}

// opsLeaf builds a command that runs act with an Admin. args says how many
// positional arguments it takes ("<group>"), checked before anything runs.
type opsLeaf struct {
	name, usage, args string
	nargs             int // exact number of positional arguments; -1: any
	flags             []cli.Flag
	// check validates flags before connecting (usage errors).
	check func(c *cli.Context) error
	act   func(e *opsEnv, c *cli.Context) error
	// follow: no overall timeout; the command runs until interrupted.
	follow func(c *cli.Context) bool
}

func (l opsLeaf) command() *cli.Command {
	return &cli.Command{
		Name: l.name, Usage: l.usage, ArgsUsage: l.args,
		Flags:        freshFlags(append(append([]cli.Flag{}, l.flags...), opsGlobalFlags()...)),
		OnUsageError: opsOnUsageError,
		Action: func(c *cli.Context) error {
			if l.nargs >= 0 && c.NArg() != l.nargs {
				if c.NArg() < l.nargs {
					return opsUsageError("%s: missing argument %s", l.name, l.args)
				}
				return opsUsageError("%s: unexpected argument %q", l.name, c.Args().Get(l.nargs))
			}
			o := c.String("output")
			if o != "table" && o != "json" {
				return opsUsageError("-o %s: want table or json", o)
			}
			if c.Duration("timeout") <= 0 {
				return opsUsageError("--timeout must be positive")
			}
			if l.check != nil {
				if err := l.check(c); err != nil {
					return err
				}
			}
			return opsRun(c, l)
		},
	}
}

func opsRun(c *cli.Context, l opsLeaf) error {
	timeout := c.Duration("timeout")
	endpoint := c.String("namesrv")
	reqTimeout := min(timeout, 10*time.Second)
	sec, err := opsSecurity(c)
	if err != nil {
		return err
	}
	admin, err := admin.New(endpoint, append(sec, admin.WithRequestTimeout(reqTimeout), admin.WithDialTimeout(min(reqTimeout, 3*time.Second)))...)
	if err != nil {
		return opsUsageError("--namesrv: %v", err)
	}
	defer admin.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt)
	defer stop()
	if l.follow == nil || !l.follow(c) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	e := &opsEnv{ctx: ctx, admin: admin, out: c.App.Writer, errw: c.App.ErrWriter, in: c.App.Reader,
		json: c.String("output") == "json", noHeaders: c.Bool("no-headers"), endpoint: endpoint}
	if err := l.act(e, c); err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			return err
		}
		return cli.Exit(opsExplain(err, endpoint, timeout), 1)
	}
	return nil
}

// opsExplain turns an error into the line an operator reads.
func opsExplain(err error, endpoint string, timeout time.Duration) string {
	switch {
	case errors.Is(err, admin.ErrNoNamesrv):
		return strings.TrimPrefix(err.Error(), "client: ") + " (set --namesrv or FERRY_NAMESRV)"
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s (raise --timeout): %v", timeout, err)
	}
	return strings.TrimPrefix(err.Error(), "client: ")
}

// opsConfirm refuses a destructive command without --yes.
func opsConfirm(c *cli.Context, what string) error {
	if !c.Bool("yes") {
		return opsUsageError("refusing to %s without --yes", what)
	}
	return nil
}

// writeJSON prints one JSON document.
func (e *opsEnv) writeJSON(v any) error {
	enc := json.NewEncoder(e.out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under header, aligned; --no-headers leaves the header
// out.
func (e *opsEnv) table(header []string, rows [][]string) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	if !e.noHeaders {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(e.out, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// opsRootAction answers `ferry` alone with help and an unknown command
// with a usage error.
func opsRootAction(c *cli.Context) error {
	if c.Args().Present() {
		return opsUsageError("unknown command %q (see ferry --help)", c.Args().First())
	}
	return cli.ShowAppHelp(c)
}

// result prints v as JSON, or runs the table printer.
func (e *opsEnv) result(v any, table func() error) error {
	if e.json {
		return e.writeJSON(v)
	}
	return table()
}

// isTerminal reports whether w is a terminal (progress bars only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// opsTime renders a ms timestamp for tables ("-" for none).
func opsTime(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// opsParseTime accepts RFC 3339, "2006-01-02 15:04:05" or "2006-01-02"
// (UTC), or milliseconds since the epoch.
func opsParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	var ms int64
	if _, err := fmt.Sscanf(s, "%d", &ms); err == nil && fmt.Sprint(ms) == s {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2006-01-02T15:04:05Z), \"2006-01-02 15:04:05\" or ms since the epoch", s)
}

// opsReorder moves flags that follow positional arguments of an ops
// command in front of them (urfave/cli stops parsing flags at the first
// positional argument), so `ferry group lag g1 -o json` works, and the
// global flags given before the command (`ferry -o json cluster list`)
// to the command, which defines them. Everything after "--" stays as it
// is.
func opsReorder(args []string, cmds []*cli.Command) []string {
	if len(args) < 2 {
		return args
	}
	// Global flags first: take them out of the way of the command path.
	var globals []string
	i := 1
	for i < len(args) {
		takesValue, ok := opsGlobalFlag(args[i])
		if !ok {
			break
		}
		globals = append(globals, args[i])
		if takesValue && i+1 < len(args) {
			globals = append(globals, args[i+1])
			i++
		}
		i++
	}
	if len(globals) > 0 {
		args = append(append(append([]string{}, args[:1]...), args[i:]...), globals...)
		i = 1
	}
	// Walk the command path.
	var leaf *cli.Command
	list := cmds
	for i < len(args) {
		var next *cli.Command
		for _, c := range list {
			if c.HasName(args[i]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		leaf = next
		list = next.Subcommands
		i++
		if len(list) == 0 {
			break
		}
	}
	if leaf == nil || len(leaf.Subcommands) > 0 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range leaf.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	rest := args[i:]
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		if a == "--" {
			pos = append(pos, rest[k+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && k+1 < len(rest) {
				flags = append(flags, rest[k+1])
				k++
			}
			continue
		}
		pos = append(pos, a)
	}
	out := append(append([]string{}, args[:i]...), flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// opsGlobalFlag reports whether arg is one of the global flags (and
// whether a value follows it as the next argument).
func opsGlobalFlag(arg string) (takesValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return false, false
	}
	name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range opsGlobalFlags() {
		if slices.Contains(f.Names(), name) {
			_, isBool := f.(*cli.BoolFlag)
			return !isBool && !hasValue, true
		}
	}
	return false, false
}

// mergeCommands adds extra to base; an extra command named like a base one
// (`broker`) lends it its subcommands, so `ferry broker run` runs a broker
// and `ferry broker status` asks one.
func mergeCommands(base, extra []*cli.Command) []*cli.Command {
	out := append([]*cli.Command{}, base...)
	for _, e := range extra {
		merged := false
		for _, b := range out {
			if b.Name == e.Name {
				b.Subcommands = append(b.Subcommands, e.Subcommands...)
				if b.Description == "" {
					b.Description = "Subcommands: " + e.Usage + "."
				}
				merged = true
			}
		}
		if !merged {
			out = append(out, e)
		}
	}
	return out
}
