package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/ferrymq/ferry/broker"
	"github.com/ferrymq/ferry/certs"
	"github.com/ferrymq/ferry/controller"
	"github.com/ferrymq/ferry/controlplane"
	"github.com/ferrymq/ferry/remoting"
)

// fileConfig is the TOML file: one table per component.
//
//	[namesrv]
//	port = 9876
//	controller_port = 9878            # 0: no control plane
//	controller_id = "ns1"
//	controller_peers = ["ns1@10.0.0.1:9878", "ns2@10.0.0.2:9878", "ns3@10.0.0.3:9878"]
//	controller_dir = "data/controller"
//
//	[broker]
//	data_dir = "data"
//	flush = "async"
//
//	[log]
//	level = "info"
//	format = "json"   # or "console"
//
//	[runtime]
//	gc_percent = 800
//	memory_limit = 1073741824
//
//	[cluster]
//	secret = "..."      # signs broker registration with the name servers
//
//	[tls]
//	cert_file = "server.crt"   # TLS on every port of the process
//	key_file = "server.key"
//	client_ca_file = ""        # when set, clients need a certificate it signed
type fileConfig struct {
	Namesrv namesrvConfig `toml:"namesrv"`
	Broker  broker.Config `toml:"broker"`
	Log     logConfig     `toml:"log"`
	Runtime runtimeConfig `toml:"runtime"`
	Cluster clusterConfig `toml:"cluster"`
	TLS     tlsConfig     `toml:"tls"`
}

// clusterConfig is what brokers and name servers share.
type clusterConfig struct {
	// Secret signs (brokers) and is required on (name servers) broker
	// registration; never printed.
	Secret string `toml:"secret"`
}

// tlsConfig turns TLS on for the remoting, HTTP and name-server ports.
type tlsConfig struct {
	CertFile     string `toml:"cert_file"`
	KeyFile      string `toml:"key_file"`
	ClientCAFile string `toml:"client_ca_file"`
	// CAFile is what a broker trusts the name servers' certificates by,
	// besides its own certificate and the system roots.
	CAFile string `toml:"ca_file"`
}

// redacted is what --print-config shows instead of a secret.
const redacted = "<redacted>"

// runtimeConfig tunes the Go runtime of a server process. The GOGC and
// GOMEMLIMIT environment variables, when set, win over it.
//
// A broker's live heap is small (a few MB: messages live in the page
// cache, metadata in pebble) while it allocates steadily per message, so
// with Go's default (a collection per 100 % of growth over the live heap)
// it collects every few MB — about twelve times a second at 5,000 msg/s,
// each with stop-the-world pauses of 0.1–0.6 ms on these machines that
// show up directly in end-to-end p99. gc_percent 800 collects about eight
// times less often for a heap of under 100 MiB; memory_limit is a soft
// ceiling on the Go heap above which collections come sooner again.
type runtimeConfig struct {
	GCPercent   int   `toml:"gc_percent"`   // Go's GOGC; -1 turns collection off (then memory_limit must be set)
	MemoryLimit int64 `toml:"memory_limit"` // bytes, soft; 0: none
}

type namesrvConfig struct {
	Host         string          `toml:"host"`
	Port         int             `toml:"port"`
	BrokerExpiry broker.Duration `toml:"broker_expiry"`
	// As the [broker] keys of the same names, for the name server's port.
	IdleTimeout           broker.Duration `toml:"idle_timeout"`
	ReadTimeout           broker.Duration `toml:"read_timeout"`
	MaxConnections        int             `toml:"max_connections"`
	MaxConnectionsPerAddr int             `toml:"max_connections_per_addr"`

	// The control plane (replicated broker groups' masters, epochs and
	// in-sync sets), run by the name servers as raft voters on a port of
	// their own: 0 runs none. Peers are "id@host:port" for every voter,
	// this one included; none makes this name server a single voter.
	ControllerPort    int             `toml:"controller_port"`
	ControllerID      string          `toml:"controller_id"`
	ControllerPeers   []string        `toml:"controller_peers"`
	ControllerDir     string          `toml:"controller_dir"`
	ControllerLease   broker.Duration `toml:"controller_lease"`
	ControllerUnclean bool            `toml:"controller_unclean_election"`
	// ACLFile: as [broker] acl_file, for the name server's clients.
	ACLFile string `toml:"acl_file"`
}

func (n namesrvConfig) validate() error {
	if n.Port < 0 || n.Port > 65535 {
		return fmt.Errorf("namesrv port %d is not a TCP port (0 picks a free one)", n.Port)
	}
	if n.IdleTimeout <= 0 || n.ReadTimeout <= 0 {
		return fmt.Errorf("namesrv idle_timeout and read_timeout must be positive durations")
	}
	if err := broker.ValidateConnLimits(n.MaxConnections, n.MaxConnectionsPerAddr); err != nil {
		return fmt.Errorf("namesrv %w", err)
	}
	return nil
}

// controller returns the control plane's configuration, nil when it is
// off.
func (n namesrvConfig) controller() (*controlplane.Config, error) {
	if n.ControllerPort == 0 {
		return nil, nil
	}
	if n.ControllerPort < 0 || n.ControllerPort > 65535 {
		return nil, fmt.Errorf("namesrv controller_port %d is not a TCP port (0: no control plane)", n.ControllerPort)
	}
	peers, err := controlplane.ParsePeers(n.ControllerPeers)
	if err != nil {
		return nil, fmt.Errorf("namesrv controller_peers: %w", err)
	}
	if len(peers) > 0 && n.ControllerID == "" {
		return nil, fmt.Errorf("namesrv controller_id must name this server's entry in controller_peers")
	}
	return &controlplane.Config{
		ID: n.ControllerID, Peers: peers, Dir: n.ControllerDir,
		ListenAddr: net.JoinHostPort(n.Host, strconv.Itoa(n.ControllerPort)),
		Lease:      n.ControllerLease.D(), UncleanElection: n.ControllerUnclean,
	}, nil
}

type logConfig struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

func defaultFileConfig() fileConfig {
	return fileConfig{
		Namesrv: namesrvConfig{Host: "0.0.0.0", Port: 9876, BrokerExpiry: broker.Duration(120 * time.Second),
			IdleTimeout: broker.Duration(remoting.DefaultIdleTimeout), ReadTimeout: broker.Duration(remoting.DefaultReadTimeout),
			MaxConnections: remoting.DefaultMaxConns, MaxConnectionsPerAddr: remoting.DefaultMaxConnsPerAddr,
			ControllerDir: filepath.Join("data", "controller"), ControllerLease: broker.Duration(controller.DefaultLease)},
		Broker:  broker.DefaultConfig(),
		Log:     logConfig{Level: "info"},
		Runtime: runtimeConfig{GCPercent: DefaultGCPercent, MemoryLimit: 1 << 30},
	}
}

// DefaultGCPercent is the servers' collector setting (see runtimeConfig).
const DefaultGCPercent = 800

func (r runtimeConfig) validate() error {
	if r.GCPercent < -1 || r.GCPercent == 0 {
		return fmt.Errorf("runtime gc_percent %d: want a positive percentage, or -1 for no collection but at memory_limit", r.GCPercent)
	}
	if r.MemoryLimit < 0 {
		return fmt.Errorf("runtime memory_limit %d: want bytes, or 0 for none", r.MemoryLimit)
	}
	if r.GCPercent == -1 && r.MemoryLimit == 0 {
		return fmt.Errorf("runtime gc_percent -1 needs a memory_limit, or the heap grows without bound")
	}
	return nil
}

// apply sets the collector, unless GOGC or GOMEMLIMIT set it already.
func (r runtimeConfig) apply(log zerolog.Logger) {
	gc := "GOGC=" + os.Getenv("GOGC")
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(r.GCPercent)
		gc = strconv.Itoa(r.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" && r.MemoryLimit > 0 {
		debug.SetMemoryLimit(r.MemoryLimit)
	}
	// A negative limit reads the one in force without changing it.
	log.Debug().Str("gc_percent", gc).Int64("memory_limit", debug.SetMemoryLimit(-1)).Msg("go runtime")
}

// Flags shared by server, broker and namesrv. Each has a FERRY_* variable.
// They carry no Value (a flag wins only when set, over the file and the
// environment): DefaultText shows the real default in help.
var (
	flagConfig      = &cli.StringFlag{Name: "config", Usage: "TOML configuration file", EnvVars: []string{"FERRY_CONFIG"}}
	flagPrintConfig = &cli.BoolFlag{Name: "print-config", Usage: "print the configuration in force (TOML) and exit"}
	flagDataDir     = &cli.StringFlag{Name: "data-dir", Usage: "where the broker stores its data", DefaultText: "./data", EnvVars: []string{"FERRY_DATA_DIR"}}
	flagNamesrvPort = &cli.IntFlag{Name: "namesrv-port", Usage: "name server port, 0 picks a free one", DefaultText: "9876", EnvVars: []string{"FERRY_NAMESRV_PORT"}}
	flagBrokerPort  = &cli.IntFlag{Name: "broker-port", Usage: "broker (remoting protocol) port, 0 picks a free one", DefaultText: "10911", EnvVars: []string{"FERRY_BROKER_PORT"}}
	flagHTTPPort    = &cli.IntFlag{Name: "http-port", Usage: "HTTP API, health and metrics port, 0 picks a free one, -1 disables", DefaultText: "8080", EnvVars: []string{"FERRY_HTTP_PORT"}}
	flagFlush       = &cli.StringFlag{Name: "flush", Usage: "async (ack after the page cache) or sync (ack after fdatasync)", DefaultText: "async", EnvVars: []string{"FERRY_FLUSH"}}
	flagHost        = &cli.StringFlag{Name: "host", Usage: "interface to listen on", DefaultText: "all", EnvVars: []string{"FERRY_HOST"}}
	flagAdvertise   = &cli.StringFlag{Name: "advertise-host", Usage: "IP clients reach the broker at", DefaultText: "the --host address, or the first non-loopback IPv4", EnvVars: []string{"FERRY_ADVERTISE_HOST"}}
	flagBrokerName  = &cli.StringFlag{Name: "broker-name", Usage: "broker name in routes", DefaultText: "broker-a", EnvVars: []string{"FERRY_BROKER_NAME"}}
	flagCluster     = &cli.StringFlag{Name: "cluster", Usage: "cluster name", DefaultText: "DefaultCluster", EnvVars: []string{"FERRY_CLUSTER"}}
	flagNamesrvAddr = &cli.StringSliceFlag{Name: "namesrv", Usage: "name server ip:port to register with (repeat or comma-separate)", EnvVars: []string{"FERRY_NAMESRV", "NAMESRV_ADDR"}}
	flagDelayLevels = &cli.StringFlag{Name: "delay-levels", Usage: `delay level table, e.g. "1s 5s 10s"`, EnvVars: []string{"FERRY_DELAY_LEVELS"}}
	flagSegment     = &cli.Int64Flag{Name: "segment-size", Usage: "commitlog segment size in bytes", DefaultText: "1 GiB", EnvVars: []string{"FERRY_SEGMENT_SIZE"}}
	flagAutoCreate  = &cli.BoolFlag{Name: "auto-create-topic", Usage: "create unknown topics on first send", DefaultText: "true", EnvVars: []string{"FERRY_AUTO_CREATE_TOPIC"}}
	flagIdleTimeout = &cli.DurationFlag{Name: "idle-timeout", Value: remoting.DefaultIdleTimeout, Usage: "close a connection silent this long", EnvVars: []string{"FERRY_IDLE_TIMEOUT"}}
	flagReadTimeout = &cli.DurationFlag{Name: "read-timeout", Value: remoting.DefaultReadTimeout, Usage: "cut off a client whose request takes longer to arrive", EnvVars: []string{"FERRY_READ_TIMEOUT"}}
	flagMaxConns    = &cli.IntFlag{Name: "max-connections", Value: remoting.DefaultMaxConns, Usage: "connections open at once on each port", EnvVars: []string{"FERRY_MAX_CONNECTIONS"}}
	flagMaxPerAddr  = &cli.IntFlag{Name: "max-connections-per-addr", Value: remoting.DefaultMaxConnsPerAddr, Usage: "connections open at once from one client IP on each port", EnvVars: []string{"FERRY_MAX_CONNECTIONS_PER_ADDR"}}
	flagPprof       = &cli.BoolFlag{Name: "pprof", Usage: "serve Go's profiler under /debug/pprof/ on the HTTP port", DefaultText: "false", EnvVars: []string{"FERRY_PPROF"}}
	flagLogLevel    = &cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", DefaultText: "info", EnvVars: []string{"FERRY_LOG_LEVEL"}}
	flagLogFormat   = &cli.StringFlag{Name: "log-format", Usage: "json or console", DefaultText: "console on a terminal, else json", EnvVars: []string{"FERRY_LOG_FORMAT"}}
	flagACLFile     = &cli.StringFlag{Name: "acl-file", Usage: "RocketMQ plain_acl.yml: authenticate and check every request (reloaded on change)", EnvVars: []string{"FERRY_ACL_FILE"}}
	flagClusterKey  = &cli.StringFlag{Name: "cluster-secret", Usage: "secret brokers sign name-server registration with; name servers require it", EnvVars: []string{"FERRY_CLUSTER_SECRET"}}
	flagTLSCert     = &cli.StringFlag{Name: "tls-cert", Usage: "TLS certificate (PEM) for every port; reloaded on change", EnvVars: []string{"FERRY_TLS_CERT"}}
	flagTLSKey      = &cli.StringFlag{Name: "tls-key", Usage: "TLS private key (PEM)", EnvVars: []string{"FERRY_TLS_KEY"}}
	flagTLSClientCA = &cli.StringFlag{Name: "tls-client-ca", Usage: "CA (PEM) that client certificates must chain to; empty: none asked", EnvVars: []string{"FERRY_TLS_CLIENT_CA"}}
	flagReplicaID   = &cli.Int64Flag{Name: "replica-id", Usage: "this replica's stable id in its broker group (1 and up; with --replication-port)", DefaultText: "none", EnvVars: []string{"FERRY_REPLICA_ID"}}
	flagReplPort    = &cli.IntFlag{Name: "replication-port", Usage: "port slaves stream the commitlog from", DefaultText: "0: replication off", EnvVars: []string{"FERRY_REPLICATION_PORT"}}
	flagReplAdv     = &cli.StringFlag{Name: "replication-advertise", Usage: "ip:port the other replicas reach the replication port at", DefaultText: "advertise host and replication port", EnvVars: []string{"FERRY_REPLICATION_ADVERTISE"}}
	flagAcks        = &cli.StringFlag{Name: "acks", Usage: "when a send is acknowledged: 0, 1 (the master's write) or all (every in-sync replica)", DefaultText: "all with replication, else 1", EnvVars: []string{"FERRY_ACKS"}}
	flagMinInSync   = &cli.IntFlag{Name: "min-insync-replicas", Usage: "refuse acks=all sends while fewer replicas are in sync", DefaultText: "1", EnvVars: []string{"FERRY_MIN_INSYNC_REPLICAS"}}
	flagFlushedAcks = &cli.BoolFlag{Name: "require-flushed-acks", Usage: "count a slave's copy only once it is on its disk", DefaultText: "false", EnvVars: []string{"FERRY_REQUIRE_FLUSHED_ACKS"}}
	flagTLSCA       = &cli.StringFlag{Name: "tls-ca", Usage: "CA (PEM) a broker trusts name servers' certificates by (besides its own and the system roots)", EnvVars: []string{"FERRY_TLS_CA"}}
)

func serverFlags(namesrv, brokerFlags bool) []cli.Flag {
	fs := []cli.Flag{flagConfig, flagPrintConfig, flagHost, flagLogLevel, flagLogFormat,
		flagIdleTimeout, flagReadTimeout, flagMaxConns, flagMaxPerAddr,
		flagACLFile, flagClusterKey, flagTLSCert, flagTLSKey, flagTLSClientCA, flagTLSCA}
	if namesrv {
		fs = append(fs, flagNamesrvPort)
	}
	if brokerFlags {
		fs = append(fs, flagDataDir, flagBrokerPort, flagHTTPPort, flagFlush, flagAdvertise, flagBrokerName,
			flagCluster, flagDelayLevels, flagSegment, flagAutoCreate, flagPprof,
			flagReplicaID, flagReplPort, flagReplAdv, flagAcks, flagMinInSync, flagFlushedAcks)
		if !namesrv {
			fs = append(fs, flagNamesrvAddr)
		}
	}
	return fs
}

// loadConfig builds the configuration: defaults, then the file, then
// environment variables and flags (urfave/cli has merged those two, flags
// winning).
func loadConfig(c *cli.Context) (fileConfig, error) {
	cfg := defaultFileConfig()
	if path := c.String("config"); path != "" {
		md, err := toml.DecodeFile(path, &cfg)
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return cfg, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
		}
	}
	set := func(name string, apply func()) {
		if c.IsSet(name) {
			apply()
		}
	}
	b := &cfg.Broker
	set("data-dir", func() { b.DataDir = c.String("data-dir") })
	set("broker-port", func() { b.Port = c.Int("broker-port") })
	set("http-port", func() { b.HTTPPort = c.Int("http-port") })
	set("flush", func() { b.Flush = c.String("flush") })
	set("host", func() {
		b.ListenHost, b.HTTPHost, cfg.Namesrv.Host = c.String("host"), c.String("host"), c.String("host")
	})
	set("advertise-host", func() { b.AdvertiseHost = c.String("advertise-host") })
	set("broker-name", func() { b.BrokerName = c.String("broker-name") })
	set("cluster", func() { b.ClusterName = c.String("cluster") })
	set("namesrv", func() {
		b.NamesrvAddrs = nil
		for _, v := range c.StringSlice("namesrv") {
			for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' }) {
				b.NamesrvAddrs = append(b.NamesrvAddrs, strings.TrimPrefix(a, "http://"))
			}
		}
	})
	set("delay-levels", func() { b.DelayLevels = c.String("delay-levels") })
	set("segment-size", func() { b.SegmentSize = c.Int64("segment-size") })
	set("auto-create-topic", func() { b.AutoCreateTopic = c.Bool("auto-create-topic") })
	set("pprof", func() { b.Pprof = c.Bool("pprof") })
	set("replica-id", func() { b.ReplicaID = c.Int64("replica-id") })
	set("replication-port", func() { b.ReplicationPort = c.Int("replication-port") })
	set("replication-advertise", func() { b.ReplicationAdvertise = c.String("replication-advertise") })
	set("acks", func() { b.Acks = c.String("acks") })
	set("min-insync-replicas", func() { b.MinInSyncReplicas = c.Int("min-insync-replicas") })
	set("require-flushed-acks", func() { b.RequireFlushedAcks = c.Bool("require-flushed-acks") })
	set("namesrv-port", func() { cfg.Namesrv.Port = c.Int("namesrv-port") })
	// The connection settings apply to every port the process serves.
	set("idle-timeout", func() {
		b.IdleTimeout, cfg.Namesrv.IdleTimeout = broker.Duration(c.Duration("idle-timeout")), broker.Duration(c.Duration("idle-timeout"))
	})
	set("read-timeout", func() {
		b.ReadTimeout, cfg.Namesrv.ReadTimeout = broker.Duration(c.Duration("read-timeout")), broker.Duration(c.Duration("read-timeout"))
	})
	set("max-connections", func() {
		b.MaxConnections, cfg.Namesrv.MaxConnections = c.Int("max-connections"), c.Int("max-connections")
	})
	set("max-connections-per-addr", func() {
		b.MaxConnectionsPerAddr, cfg.Namesrv.MaxConnectionsPerAddr = c.Int("max-connections-per-addr"), c.Int("max-connections-per-addr")
	})
	set("acl-file", func() { b.ACLFile, cfg.Namesrv.ACLFile = c.String("acl-file"), c.String("acl-file") })
	set("cluster-secret", func() { cfg.Cluster.Secret = c.String("cluster-secret") })
	set("tls-cert", func() { cfg.TLS.CertFile = c.String("tls-cert") })
	set("tls-key", func() { cfg.TLS.KeyFile = c.String("tls-key") })
	set("tls-client-ca", func() { cfg.TLS.ClientCAFile = c.String("tls-client-ca") })
	set("tls-ca", func() { cfg.TLS.CAFile = c.String("tls-ca") })
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		return cfg, fmt.Errorf("tls: cert_file and key_file go together")
	}
	if cfg.TLS.ClientCAFile != "" && cfg.TLS.CertFile == "" {
		return cfg, fmt.Errorf("tls: client_ca_file needs cert_file and key_file")
	}
	if n := len(cfg.Cluster.Secret); n > 0 && n < 16 {
		return cfg, fmt.Errorf("cluster secret: %d characters is too short to resist guessing; use at least 16", n)
	}
	set("log-level", func() { cfg.Log.Level = c.String("log-level") })
	set("log-format", func() { cfg.Log.Format = c.String("log-format") })
	if err := cfg.Namesrv.validate(); err != nil {
		return cfg, err
	}
	if _, err := cfg.Namesrv.controller(); err != nil {
		return cfg, err
	}
	if _, err := zerolog.ParseLevel(cfg.Log.Level); err != nil || cfg.Log.Level == "" {
		return cfg, fmt.Errorf("log level %q: want debug, info, warn or error", cfg.Log.Level)
	}
	if f := cfg.Log.Format; f != "" && f != "json" && f != "console" {
		return cfg, fmt.Errorf("log format %q: want json or console", f)
	}
	if err := cfg.Runtime.validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// shareACL gives a name server running beside a broker the broker's ACL
// file when it has none of its own: one process, one set of accounts.
func (c *fileConfig) shareACL(withNamesrv, withBroker bool) {
	if withNamesrv && withBroker && c.Namesrv.ACLFile == "" {
		c.Namesrv.ACLFile = c.Broker.ACLFile
	}
}

// printConfig writes cfg as TOML with its secrets redacted.
func printConfig(w io.Writer, cfg fileConfig) error {
	if cfg.Cluster.Secret != "" {
		cfg.Cluster.Secret = redacted
	}
	return toml.NewEncoder(w).Encode(cfg)
}

// newLogger logs JSON to stderr, or for people on a terminal, console text.
func newLogger(cfg logConfig) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.Level)
	var w io.Writer = os.Stderr
	format := cfg.Format
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// server is the TLS configuration of the process's ports, nil when TLS is
// off.
func (t tlsConfig) server(log zerolog.Logger) (*tls.Config, error) {
	if t.CertFile == "" {
		return nil, nil
	}
	return certs.Server(t.CertFile, t.KeyFile, t.ClientCAFile, log)
}

// client is the TLS configuration a broker dials its name servers with:
// it trusts the process's own certificate (a self-signed or private CA
// one) and the system roots; nil when TLS is off.
func (t tlsConfig) client() *tls.Config {
	if t.CertFile == "" {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, f := range []string{t.CertFile, t.CAFile} {
		if f == "" {
			continue
		}
		if pem, err := os.ReadFile(f); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if t.ClientCAFile != "" {
		// Name servers ask for a client certificate: present our own.
		if cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err == nil {
			cfg.Certificates = []tls.Certificate{cert}
		}
	}
	return cfg
}
