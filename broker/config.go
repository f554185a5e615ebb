package broker

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/remoting"
)

// Config is the broker's configuration. Field tags are the TOML keys of the
// [broker] table; Duration fields take Go durations ("30s", "500ms").
type Config struct {
	DataDir     string `toml:"data_dir"`
	BrokerName  string `toml:"broker_name"`
	ClusterName string `toml:"cluster_name"`
	BrokerID    int64  `toml:"broker_id"`

	// ListenHost and Port are where the remoting protocol is served; port 0
	// picks a free port.
	ListenHost string `toml:"listen_host"`
	Port       int    `toml:"port"`
	// AdvertiseHost is the IP clients reach this broker at: it is
	// registered with the name servers and stored as STOREHOST. Empty means
	// ListenHost when that is one address (a broker listening only on
	// 127.0.0.1 cannot be reached anywhere else), otherwise the first
	// non-loopback IPv4 address, else 127.0.0.1.
	AdvertiseHost string `toml:"advertise_host"`
	// HTTPHost and HTTPPort serve /livez, /readyz, /metrics and the HTTP
	// API; HTTPPort -1 disables HTTP.
	HTTPHost string `toml:"http_host"`
	HTTPPort int    `toml:"http_port"`

	// IdleTimeout closes a remoting or HTTP connection on which nothing
	// has arrived for that long (a remoting connection with a request
	// being served, such as a held pull, is not idle).
	IdleTimeout Duration `toml:"idle_timeout"`
	// ReadTimeout bounds receiving one request once it has started: a
	// remoting frame, or an HTTP request's header and body. A client
	// slower than that is cut off.
	ReadTimeout Duration `toml:"read_timeout"`
	// MaxConnections and MaxConnectionsPerAddr bound the connections open
	// at once on each port (remoting, HTTP), overall and from one client
	// IP address; one more is closed as soon as it is accepted.
	MaxConnections        int `toml:"max_connections"`
	MaxConnectionsPerAddr int `toml:"max_connections_per_addr"`

	// NamesrvAddrs are the name servers to register with ("ip:port").
	NamesrvAddrs     []string `toml:"namesrv_addrs"`
	RegisterInterval Duration `toml:"register_interval"`

	Flush          string   `toml:"flush"` // "async" or "sync"
	FlushInterval  Duration `toml:"flush_interval"`
	SyncTimeout    Duration `toml:"sync_timeout"`
	SegmentSize    int64    `toml:"segment_size"`
	MaxMessageSize int      `toml:"max_message_size"`
	// FileReservedTime is how long commitlog segments are kept after their
	// last write; 0 keeps them forever.
	FileReservedTime Duration `toml:"file_reserved_time"`
	// DiskMaxUsedRatio stops accepting sends when the data disk is fuller
	// than this (0 to 1; 0 means 0.95).
	DiskMaxUsedRatio float64 `toml:"disk_max_used_ratio"`

	AutoCreateTopic       bool  `toml:"auto_create_topic"`
	AutoCreateGroup       bool  `toml:"auto_create_group"`
	DefaultTopicQueueNums int32 `toml:"default_topic_queue_nums"`

	// PullMaxMessages and PullMaxBytes cap one pull's answer.
	PullMaxMessages int `toml:"pull_max_messages"`
	PullMaxBytes    int `toml:"pull_max_bytes"`
	// LongPollMax caps how long a pull is held when nothing is there.
	LongPollMax Duration `toml:"long_poll_max"`

	// DelayLevels is the delay level table, space separated ("1s 5s ...").
	DelayLevels   string `toml:"delay_levels"`
	RetryMaxTimes int32  `toml:"retry_max_times"`

	// ClientExpiry drops producers and consumers silent this long.
	ClientExpiry Duration `toml:"client_expiry"`
	// QueueLockExpiry frees an orderly consumer's queue lock not renewed
	// this long.
	QueueLockExpiry Duration `toml:"queue_lock_expiry"`
	// OffsetFlushInterval is how often committed consumer offsets are
	// synced to the metadata store (and on shutdown).
	OffsetFlushInterval Duration `toml:"offset_flush_interval"`
	// ShutdownTimeout bounds the graceful part of a shutdown.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	// ACLFile names a RocketMQ plain_acl.yml; when set, every remoting and
	// HTTP request is authenticated and checked (package acl). The file is
	// reloaded when it changes.
	ACLFile string `toml:"acl_file"`
	// MetricsAuth makes /metrics need an account when ACL is on.
	MetricsAuth bool `toml:"metrics_auth"`
	// Pprof mounts Go's profiler under /debug/pprof/ on the HTTP port
	// (admin only when ACL is on).
	Pprof bool `toml:"pprof"`
	// ProducerIDExpiry drops the state of an idempotent producer idle this
	// long (0 means 7 days); ProducerSnapshotInterval is how often that
	// state is saved (0 means a minute), bounding the log replayed on start.
	ProducerIDExpiry         Duration `toml:"producer_id_expiry"`
	ProducerSnapshotInterval Duration `toml:"producer_snapshot_interval"`
	// TransactionTimeout is the age of a half message before the broker
	// checks its transaction; TransactionCheckInterval how often it looks;
	// TransactionCheckMax how many checks before it parks the half.
	TransactionTimeout       Duration `toml:"transaction_timeout"`
	TransactionCheckInterval Duration `toml:"transaction_check_interval"`
	TransactionCheckMax      int      `toml:"transaction_check_max"`

	// Replication (a broker group of one master and its slaves; see
	// replication.go). ReplicationPort 0 turns it off: the broker is
	// standalone and registers with BrokerID. Otherwise ReplicaID (1 and
	// up, stable, unique in the group) names this replica to the control
	// plane run by the name servers, which says who is master; the master
	// registers its routes as broker id 0, a slave as its ReplicaID.
	ReplicaID       int64 `toml:"replica_id"`
	ReplicationPort int   `toml:"replication_port"`
	// ReplicationAdvertise is the ip:port the other replicas reach this
	// one's replication port at, as given to the control plane (for a
	// port mapped by NAT or a proxy). Empty means AdvertiseHost and the
	// replication port.
	ReplicationAdvertise string `toml:"replication_advertise"`
	// Acks is when a send is acknowledged: "0" and "1" after the master's
	// own write, "all" once every in-sync replica has it (the default with
	// replication on). TopicAcks overrides it per topic.
	Acks      string            `toml:"acks"`
	TopicAcks map[string]string `toml:"topic_acks"`
	// MinInSyncReplicas: an acks=all send is refused while the in-sync set
	// (the master included) is smaller (default 1, as Kafka's).
	MinInSyncReplicas int `toml:"min_insync_replicas"`
	// RequireFlushedAcks counts a slave's copy only once it is on its disk.
	RequireFlushedAcks bool `toml:"require_flushed_acks"`
	// ReplicaLagMax drops a slave from the in-sync set when it has not
	// caught up with the master's end for this long (default 5s).
	ReplicaLagMax Duration `toml:"replica_lag_max"`
	// SlaveReadBehindBytes: a consumer whose next message lies further
	// than this behind the master's log end (so no longer in memory) is
	// told to pull from a slave (suggestWhichBrokerId; see pull.go).
	// 0 means 40% of physical memory, as RocketMQ's
	// accessMessageInMemoryMaxRatio.
	SlaveReadBehindBytes int64 `toml:"slave_read_behind_bytes"`
}

// Ack modes (Config.Acks).
const (
	AcksNone   = "0"
	AcksLeader = "1"
	AcksAll    = "all"
)

// Replicated reports whether replication is on.
func (c *Config) Replicated() bool { return c.ReplicationPort != 0 }

// AcksFor returns the ack mode of topic.
func (c *Config) AcksFor(topic string) string {
	if a, ok := c.TopicAcks[topic]; ok {
		return a
	}
	if c.Acks != "" {
		return c.Acks
	}
	if c.Replicated() {
		return AcksAll
	}
	return AcksLeader
}

func validAcks(a string) bool { return a == AcksNone || a == AcksLeader || a == AcksAll }

// DefaultDelayLevels is RocketMQ's delay level table.
const DefaultDelayLevels = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h"

// DefaultConfig returns the defaults: a broker that works with no
// configuration, storing under ./data.
func DefaultConfig() Config {
	return Config{
		DataDir:               "data",
		BrokerName:            "broker-a",
		ClusterName:           "DefaultCluster",
		ListenHost:            "0.0.0.0",
		Port:                  10911,
		HTTPHost:              "0.0.0.0",
		HTTPPort:              8080,
		IdleTimeout:           Duration(remoting.DefaultIdleTimeout),
		ReadTimeout:           Duration(remoting.DefaultReadTimeout),
		MaxConnections:        remoting.DefaultMaxConns,
		MaxConnectionsPerAddr: remoting.DefaultMaxConnsPerAddr,
		RegisterInterval:      Duration(30 * time.Second),
		Flush:                 "async",
		FlushInterval:         Duration(commitlog.DefaultFlushInterval),
		SyncTimeout:           Duration(commitlog.DefaultSyncTimeout),
		SegmentSize:           commitlog.DefaultSegmentSize,
		MaxMessageSize:        commitlog.DefaultMaxMessageSize,
		FileReservedTime:      Duration(72 * time.Hour),
		DiskMaxUsedRatio:      0.95,
		AutoCreateTopic:       true,
		AutoCreateGroup:       true,
		DefaultTopicQueueNums: 8,
		PullMaxMessages:       64,
		PullMaxBytes:          1 << 20,
		LongPollMax:           Duration(30 * time.Second),
		DelayLevels:           DefaultDelayLevels,
		RetryMaxTimes:         16,
		ClientExpiry:          Duration(120 * time.Second),
		QueueLockExpiry:       Duration(60 * time.Second),
		OffsetFlushInterval:   Duration(time.Second),
		ShutdownTimeout:       Duration(10 * time.Second),

		TransactionTimeout:       Duration(6 * time.Second),
		TransactionCheckInterval: Duration(30 * time.Second),
		TransactionCheckMax:      15,
	}
}

// Validate checks every field and explains the first it cannot accept.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.DataDir == "" {
		bad("data_dir must be set")
	}
	if !validName(c.BrokerName) {
		bad("broker_name %q: use letters, digits, '-' and '_' (1 to 127 characters)", c.BrokerName)
	}
	if !validName(c.ClusterName) {
		bad("cluster_name %q: use letters, digits, '-' and '_' (1 to 127 characters)", c.ClusterName)
	}
	if c.BrokerID < 0 {
		bad("broker_id %d must not be negative", c.BrokerID)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("port %d is not a TCP port (0 picks a free one)", c.Port)
	}
	if c.HTTPPort < -1 || c.HTTPPort > 65535 {
		bad("http_port %d is not a TCP port (0 picks a free one, -1 disables HTTP)", c.HTTPPort)
	}
	if err := ValidateConnLimits(c.MaxConnections, c.MaxConnectionsPerAddr); err != nil {
		bad("%v", err)
	}
	if c.AdvertiseHost != "" {
		if _, err := netip.ParseAddr(c.AdvertiseHost); err != nil {
			bad("advertise_host %q must be an IP address (clients dial it as given)", c.AdvertiseHost)
		}
	}
	for _, a := range c.NamesrvAddrs {
		if _, err := netip.ParseAddrPort(a); err != nil {
			bad("namesrv address %q must be ip:port (RocketMQ clients accept IP literals only)", a)
		}
	}
	if _, err := commitlog.ParseFlushMode(c.Flush); err != nil {
		bad("flush %q must be async or sync", c.Flush)
	}
	if c.SegmentSize < 1<<20 {
		bad("segment_size %d must be at least 1 MiB", c.SegmentSize)
	}
	if c.MaxMessageSize < 1024 || int64(c.MaxMessageSize) > c.SegmentSize/2 {
		bad("max_message_size %d must be between 1 KiB and half the segment size", c.MaxMessageSize)
	}
	if c.DiskMaxUsedRatio < 0 || c.DiskMaxUsedRatio > 1 {
		bad("disk_max_used_ratio %v must be between 0 and 1", c.DiskMaxUsedRatio)
	}
	if c.DefaultTopicQueueNums < 1 || c.DefaultTopicQueueNums > 1024 {
		bad("default_topic_queue_nums %d must be 1 to 1024", c.DefaultTopicQueueNums)
	}
	if c.PullMaxMessages < 1 || c.PullMaxBytes < 1024 {
		bad("pull_max_messages must be ≥ 1 and pull_max_bytes ≥ 1024")
	}
	if _, err := ParseDelayLevels(c.DelayLevels); err != nil {
		bad("delay_levels: %v", err)
	}
	if c.RetryMaxTimes < 0 || c.RetryMaxTimes > 1000 {
		bad("retry_max_times %d must be 0 to 1000", c.RetryMaxTimes)
	}
	for name, d := range map[string]Duration{
		"register_interval": c.RegisterInterval, "flush_interval": c.FlushInterval, "sync_timeout": c.SyncTimeout,
		"long_poll_max": c.LongPollMax, "client_expiry": c.ClientExpiry, "queue_lock_expiry": c.QueueLockExpiry,
		"offset_flush_interval": c.OffsetFlushInterval, "shutdown_timeout": c.ShutdownTimeout,
		"idle_timeout": c.IdleTimeout, "read_timeout": c.ReadTimeout,
	} {
		if d <= 0 {
			bad("%s must be a positive duration", name)
		}
	}
	if c.FileReservedTime < 0 {
		bad("file_reserved_time must not be negative (0 keeps segments forever)")
	}
	if c.TransactionTimeout < 0 || c.TransactionCheckInterval < 0 {
		bad("transaction_timeout and transaction_check_interval must not be negative (0 means 6s and 30s)")
	}
	if c.TransactionCheckMax < 0 || c.TransactionCheckMax > 1000 {
		bad("transaction_check_max %d must be 0 to 1000 (0 means 15)", c.TransactionCheckMax)
	}
	if c.ReplicationPort < 0 || c.ReplicationPort > 65535 {
		bad("replication_port %d is not a TCP port (0 turns replication off)", c.ReplicationPort)
	}
	if c.ReplicationAdvertise != "" {
		if ap, err := netip.ParseAddrPort(c.ReplicationAdvertise); err != nil || ap.Port() == 0 {
			bad("replication_advertise %q must be ip:port with a port (the other replicas dial it as given)", c.ReplicationAdvertise)
		}
	}
	if c.Replicated() {
		if c.ReplicaID < 1 {
			bad("replica_id %d: with replication on give each replica of the group a stable id from 1 (0 is the master's broker id in routes)", c.ReplicaID)
		}
	}
	if c.Acks != "" && !validAcks(c.Acks) {
		bad("acks %q must be 0, 1 or all", c.Acks)
	}
	for topic, a := range c.TopicAcks {
		if !validAcks(a) {
			bad("topic_acks[%q] = %q must be 0, 1 or all", topic, a)
		}
	}
	if c.MinInSyncReplicas < 0 || c.MinInSyncReplicas > 64 {
		bad("min_insync_replicas %d must be 1 to 64 (0 means 1)", c.MinInSyncReplicas)
	}
	if c.ReplicaLagMax < 0 {
		bad("replica_lag_max must not be negative (0 means 5s)")
	}
	if c.SlaveReadBehindBytes < 0 {
		bad("slave_read_behind_bytes must not be negative (0 means 40%% of physical memory)")
	}
	if len(errs) > 0 {
		return errors.New("broker config: " + strings.Join(errs, "; "))
	}
	return nil
}

// ValidateConnLimits checks max_connections and max_connections_per_addr
// (of the [broker] or the [namesrv] table).
func ValidateConnLimits(total, perAddr int) error {
	if total < 1 {
		return fmt.Errorf("max_connections %d must be at least 1 (connections open at once on each port)", total)
	}
	if perAddr < 1 || perAddr > total {
		return fmt.Errorf("max_connections_per_addr %d must be 1 to max_connections (%d)", perAddr, total)
	}
	return nil
}

// ParseDelayLevels parses a space-separated list of durations ("1s 5s
// 100ms"); 1 to 64 levels, each positive and at most 40 days.
func ParseDelayLevels(s string) ([]time.Duration, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 64 {
		return nil, fmt.Errorf("want 1 to 64 space-separated durations, got %d", len(fields))
	}
	out := make([]time.Duration, len(fields))
	for i, f := range fields {
		d, err := parseDuration(f)
		if err != nil || d <= 0 || d > 40*24*time.Hour {
			return nil, fmt.Errorf("level %d %q: want a positive duration up to 40 days such as 500ms, 10s, 2h or 1d", i+1, f)
		}
		out[i] = d
	}
	return out, nil
}

// parseDuration accepts Go durations and a "d" suffix for days.
func parseDuration(s string) (time.Duration, error) {
	if strings.HasSuffix(s, "d") {
		d, err := time.ParseDuration(strings.TrimSuffix(s, "d") + "h")
		return d * 24, err
	}
	return time.ParseDuration(s)
}

// Duration is a time.Duration that reads and writes as text ("30s").
type Duration time.Duration

// UnmarshalText parses a duration such as "30s" or "2d".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as Go formats it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func validName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// advertiseAddr picks the IP clients reach this broker at: the configured
// one, else the one address it listens on, else an interface's.
func advertiseAddr(host, listen string) netip.Addr {
	if host != "" {
		return netip.MustParseAddr(host)
	}
	if ip, err := netip.ParseAddr(listen); err == nil && !ip.IsUnspecified() {
		return ip.Unmap()
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					ip = ip.Unmap()
					if ip.Is4() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
						return ip
					}
				}
			}
		}
	}
	return netip.MustParseAddr("127.0.0.1")
}
