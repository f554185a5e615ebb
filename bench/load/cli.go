package load

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/ferrymq/ferry/certs"
)

// cmdFlags are the values of Main's flags.
type cmdFlags struct {
	cfg        Config
	quiet      bool
	cpuProfile string
	tls        bool   // connect with TLS
	caFile     string // CA to trust with tls
	insecure   bool   // tls without verifying the server
}

func defineFlags(fs *flag.FlagSet, f *cmdFlags) {
	cfg := &f.cfg
	fs.StringVar(&cfg.Namesrv, "namesrv", "127.0.0.1:9876", "name server ip:port")
	fs.StringVar(&cfg.Topic, "topic", "BenchTopic", "topic (with --topics N: topic-0 … topic-N-1)")
	fs.IntVar(&cfg.Topics, "topics", 1, "number of topics")
	fs.IntVar(&cfg.Queues, "queues", 8, "queues per topic when creating it")
	fs.IntVar(&cfg.Producers, "producers", 4, "concurrent producers")
	fs.IntVar(&cfg.Conns, "conns", 0, "connections the producers share (default min(producers, 4))")
	fs.IntVar(&cfg.Size, "size", 1024, "message body bytes")
	fs.IntVar(&cfg.Batch, "batch", 1, "messages per send (1: single sends)")
	fs.IntVar(&cfg.Rate, "rate", 0, "total messages per second (0: flat out)")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Second, "measured time")
	fs.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "unmeasured warm-up")
	fs.BoolVar(&cfg.Idempotent, "idempotent", false, "idempotent sends (producer id, epoch and sequence on every message)")
	fs.IntVar(&cfg.Window, "sdk-window", 0, "send through the SDK: SendAsync per message, at most this many unanswered per producer (0: raw remoting requests)")
	fs.DurationVar(&cfg.Linger, "sdk-linger", 0, "the SDK's linger time with --sdk-window")
	fs.IntVar(&cfg.Consumers, "sdk-consumers", 0, "consume with --sdk-window: this many SDK push consumers, each its own group (default 1)")
	fs.IntVar(&cfg.PullBatch, "sdk-pull-batch", 0, "consume with --sdk-window: the push consumers' pull batch size (0: the SDK's default)")
	fs.BoolVar(&cfg.Idle, "idle", false, "consume with --sdk-window: no producers, the consumers' long polls held for --duration")
	fs.DurationVar(&cfg.DedupWindow, "dedup-window", 0, "create the topics with this dedup window (0: off; a topic that exists keeps its own)")
	fs.BoolVar(&cfg.Transactions, "transactions", false, "send each message as a transaction committed at once (SDK SendInTransaction, one at a time per producer)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress lines")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	fs.StringVar(&cfg.Credentials.AccessKey, "access-key", os.Getenv("FERRY_ACCESS_KEY"), "ACL access key to authenticate with (env FERRY_ACCESS_KEY)")
	fs.BoolVar(&cfg.SignRequests, "sign-requests", false, "sign every request instead of authenticating each connection once")
	fs.StringVar(&cfg.Credentials.SecretKey, "secret-key", os.Getenv("FERRY_SECRET_KEY"), "ACL secret key (env FERRY_SECRET_KEY)")
	fs.BoolVar(&f.tls, "tls", false, "connect with TLS")
	fs.StringVar(&f.caFile, "ca", "", "CA certificate (PEM) to trust with --tls")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "--tls without verifying the server (development only)")
}

// FlagSet returns the flags Main parses, with their defaults and usage,
// for a command line that lists them in its own style.
func FlagSet(mode string) *flag.FlagSet {
	fs := flag.NewFlagSet("ferry bench "+mode, flag.ContinueOnError)
	defineFlags(fs, &cmdFlags{})
	return fs
}

// Main runs `ferry bench produce|consume` with its own flags and prints
// the result; it returns the exit code.
func Main(mode string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ferry bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f cmdFlags
	defineFlags(fs, &f)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, quiet, cpuProfile := f.cfg, &f.quiet, &f.cpuProfile
	if (cfg.Credentials.AccessKey == "") != (cfg.Credentials.SecretKey == "") {
		fmt.Fprintln(stderr, "ferry bench: --access-key and --secret-key go together")
		return 2
	}
	if f.tls || f.caFile != "" || f.insecure {
		tc, err := certs.Client(f.caFile, f.insecure, "", "")
		if err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		cfg.TLS = tc
	}
	cfg.Consume = mode == "consume"
	if err := cfg.defaults(); err != nil {
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 2
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "ferry bench:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	r, err := Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(stderr, "ferry bench:", err)
		return 1
	}
	fmt.Fprint(stdout, Format(cfg, r))
	if r.Sent == 0 && !cfg.Idle {
		return 1
	}
	return 0
}

// Format renders a result as a few aligned lines.
func Format(cfg Config, r Result) string {
	var b strings.Builder
	if cfg.Idle {
		fmt.Fprintf(&b, "idle sdk consumers=%d topics=%d queues=%d for %.1fs\n", cfg.Consumers, cfg.Topics, cfg.Queues, r.Seconds)
		return b.String()
	}
	if cfg.Window > 0 {
		fmt.Fprintf(&b, "sdk producers=%d window=%d linger=%v size=%d topics=%d queues=%d rate=%d consumers=%d\n",
			cfg.Producers, cfg.Window, cfg.Linger, cfg.Size, cfg.Topics, cfg.Queues, cfg.Rate, cfg.Consumers)
	} else {
		fmt.Fprintf(&b, "producers=%d conns=%d size=%d batch=%d topics=%d queues=%d rate=%d idempotent=%t\n",
			cfg.Producers, cfg.Conns, cfg.Size, cfg.Batch, cfg.Topics, cfg.Queues, cfg.Rate, cfg.Idempotent)
	}
	fmt.Fprintf(&b, "produced   %d msgs in %.1fs: %.0f msg/s, %.1f MiB/s, errors %d\n", r.Sent, r.Seconds, r.MsgPerSec, r.MiBPerSec, r.Errors)
	fmt.Fprintf(&b, "send rtt   p50 %v  p99 %v  p99.9 %v\n", r.SendP50, r.SendP99, r.SendP999)
	if cfg.Consume {
		fmt.Fprintf(&b, "consumed   %d msgs: %.0f msg/s\n", r.Consumed, r.ConsumePerSec)
		fmt.Fprintf(&b, "end to end p50 %v  p99 %v  p99.9 %v\n", r.E2EP50, r.E2EP99, r.E2EP999)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}
