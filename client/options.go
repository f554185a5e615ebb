package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Options are typed by the clients that take them, so that an option a
// client has no use for does not compile:
//
//	CommonOpt    every client: endpoint security, group, logger, instance name, timeouts
//	ProducerOpt  NewProducer only
//	ConsumerOpt  NewPushConsumer and NewPullConsumer
//	PushOpt      NewPushConsumer only
//
// A constructor takes the interface of its client (ProducerOption,
// PushConsumerOption, PullConsumerOption); newConfig applies and checks
// them in one place, on a config of the constructor's own.

// ProducerOption configures a Producer: a CommonOpt or a ProducerOpt.
type ProducerOption interface {
	apply(*config)
	producerOption()
}

// PushConsumerOption configures a PushConsumer: a CommonOpt, a ConsumerOpt or
// a PushOpt.
type PushConsumerOption interface {
	apply(*config)
	pushConsumerOption()
}

// PullConsumerOption configures a PullConsumer: a CommonOpt or a ConsumerOpt.
type PullConsumerOption interface {
	apply(*config)
	pullConsumerOption()
}

// CommonOpt is an option every client takes.
type CommonOpt func(*config)

// Opt is a ProducerOption, under the name a producer's option list had
// before options were typed per client, so that code building one
// (var opts []client.Opt; opts = append(opts, client.WithLinger(d))) still
// compiles.
//
// Deprecated: use ProducerOption.
type Opt = ProducerOption

// ProducerOpt is an option of producers only.
type ProducerOpt func(*config)

// ConsumerOpt is an option of push and pull consumers.
type ConsumerOpt func(*config)

// PushOpt is an option of push consumers only.
type PushOpt func(*config)

func (o CommonOpt) apply(c *config)   { applyOpt(o, c) }
func (o ProducerOpt) apply(c *config) { applyOpt(o, c) }
func (o ConsumerOpt) apply(c *config) { applyOpt(o, c) }
func (o PushOpt) apply(c *config)     { applyOpt(o, c) }

func (CommonOpt) producerOption()       {}
func (CommonOpt) pushConsumerOption()   {}
func (CommonOpt) pullConsumerOption()   {}
func (ProducerOpt) producerOption()     {}
func (ConsumerOpt) pushConsumerOption() {}
func (ConsumerOpt) pullConsumerOption() {}
func (PushOpt) pushConsumerOption()     {}

func applyOpt[F ~func(*config)](f F, c *config) {
	if f == nil {
		c.bad("nil option")
		return
	}
	f(c)
}

// Options bundles common options into one, for settings shared by
// several clients (endpoint security, logger):
//
//	conn := client.Options(client.WithCredentials(ak, sk), client.WithTLS(cfg))
//	p, _ := client.NewProducer(ep, conn, client.WithRetries(4))
//	c, _ := client.NewPullConsumer(ep, conn, client.WithGroup("g"))
func Options(opts ...CommonOpt) CommonOpt {
	opts = append([]CommonOpt(nil), opts...)
	return func(c *config) {
		for _, o := range opts {
			o.apply(c)
		}
	}
}

// optionList is opts as the options newConfig applies.
func optionList[T interface{ apply(*config) }](opts []T) []interface{ apply(*config) } {
	out := make([]interface{ apply(*config) }, len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}

// ConsumeFrom says where a consumer group with no committed offset on a
// queue starts.
type ConsumeFrom int8

// Start positions. As in RocketMQ, the broker may answer a young queue
// (its first message still hot) with offset 0 whatever the policy.
const (
	ConsumeFromLastOffset ConsumeFrom = iota
	ConsumeFromFirstOffset
	ConsumeFromTimestamp
)

// Defaults of the options.
const (
	DefaultSendTimeout         = 3 * time.Second
	DefaultRetries             = 2
	DefaultBatchSize           = 256
	DefaultMaxBatchBytes       = 1 << 20
	DefaultMaxInFlight         = 1
	DefaultMaxBufferedBytes    = 32 << 20
	DefaultMaxMessageSize      = 4 << 20
	DefaultPullBatchSize       = 64
	DefaultMaxCachedMessages   = 1024
	DefaultMaxCachedBytes      = 64 << 20
	DefaultConsumeGoroutines   = 16
	DefaultMaxReconsumeTimes   = 16
	DefaultLongPollTimeout     = 20 * time.Second
	DefaultHeartbeatInterval   = 30 * time.Second
	DefaultRebalanceInterval   = 20 * time.Second
	DefaultRouteRefresh        = 30 * time.Second
	DefaultCommitInterval      = 5 * time.Second
	DefaultSuspendInterval     = time.Second
	DefaultVisibilityTimeout   = 30 * time.Second
	defaultGroup               = "DEFAULT_PRODUCER"
	innerProducerGroup         = "CLIENT_INNER_PRODUCER"
	defaultAutoCreateQueueNums = 8
)

// config is the validated form of the options. Clients copy it and never
// change it after construction.
type config struct {
	// endpoint
	namesrvAddrs []string // remoting transport
	httpBase     string   // HTTP transport ("http://host:port", no trailing slash)

	group      string
	logger     Logger
	instance   string
	httpClient *http.Client
	ownsHTTP   bool // httpClient was made here: Close drops its idle connections

	// producer
	sendTimeout      time.Duration
	retries          int
	linger           time.Duration
	batchSize        int
	maxBatchBytes    int
	maxBufferedBytes int
	maxMessageSize   int
	maxInFlight      int  // per broker, of SendAsync's batches
	failWhenFull     bool // SendAsync fails at once on a full buffer
	selector         QueueSelector
	producerID       string             // WithIdempotence
	txChecker        TransactionChecker // WithTransactionChecker (transaction.go)

	// consumers
	consumeFrom          ConsumeFrom
	consumeTimestamp     time.Time
	maxCachedMessages    int
	maxCachedBytes       int
	orderly              bool
	broadcast            bool
	offsetDir            string // broadcast offsets; "" keeps them in memory
	consumeGoroutines    int
	consumeBatchSize     int
	maxReconsumeTimes    int
	pullBatchSize        int
	longPoll             time.Duration
	suspendInterval      time.Duration
	visibility           time.Duration
	heartbeatInterval    time.Duration
	rebalanceInterval    time.Duration
	routeRefreshInterval time.Duration
	commitInterval       time.Duration

	// security (credentials.go)
	creds    remoting.Credentials
	signEach bool
	tls      *tls.Config

	errs []string
}

func (c *config) bad(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// WithGroup sets the producer or consumer group. Consumers require one.
func WithGroup(group string) CommonOpt { return CommonOpt(func(c *config) { c.group = group }) }

// WithLogger injects the logger (default: none).
func WithLogger(l Logger) CommonOpt {
	return CommonOpt(func(c *config) {
		if l == nil {
			c.bad("WithLogger: nil logger")
			return
		}
		c.logger = l
	})
}

// WithInstanceName sets the instance part of the client id; clients of one
// process get distinct ids by default.
func WithInstanceName(name string) CommonOpt { return CommonOpt(func(c *config) { c.instance = name }) }

// WithHTTPClient sets the http.Client of the HTTP transport (default: a
// client of its own, whose idle connections Close drops).
func WithHTTPClient(hc *http.Client) CommonOpt {
	return CommonOpt(func(c *config) {
		if hc == nil {
			c.bad("WithHTTPClient: nil client")
			return
		}
		c.httpClient = hc
	})
}

// WithSendTimeout bounds one send attempt (default 3 s).
func WithSendTimeout(d time.Duration) CommonOpt {
	return CommonOpt(func(c *config) { c.sendTimeout = d })
}

// WithRetries sets how many more attempts a send gets after a retriable
// failure, each on another broker when there is one (default 2).
func WithRetries(n int) ProducerOpt { return ProducerOpt(func(c *config) { c.retries = n }) }

// WithLinger makes automatic batching wait up to d for more messages
// before sending a batch that is not full. Over the remoting protocol
// SendAsync always batches per broker (messages wait only while a request
// to their broker is in flight, see WithMaxInFlight), and d adds a wait;
// with d > 0 Send batches too. Over HTTP, and for idempotent producers,
// d > 0 turns on batching per queue. 0 (the default) adds no wait.
func WithLinger(d time.Duration) ProducerOpt { return ProducerOpt(func(c *config) { c.linger = d }) }

// WithMaxInFlight bounds the batch requests of SendAsync outstanding per
// broker (default 1, which keeps the order of messages per queue; more
// may reorder a queue's messages when a request is retried or the broker
// serves two at once).
func WithMaxInFlight(n int) ProducerOpt { return ProducerOpt(func(c *config) { c.maxInFlight = n }) }

// WithFailWhenBufferFull makes SendAsync fail at once with ErrBufferFull
// when the send buffer (WithMaxBufferedBytes) is full, instead of waiting
// for room until its context ends.
func WithFailWhenBufferFull(on bool) ProducerOpt {
	return ProducerOpt(func(c *config) { c.failWhenFull = on })
}

// WithBatchSize caps the messages in one automatic batch (default 256); a
// full batch is sent without waiting for the linger time.
func WithBatchSize(n int) ProducerOpt { return ProducerOpt(func(c *config) { c.batchSize = n }) }

// WithMaxBatchBytes caps the body bytes of one automatic batch (default
// 1 MiB).
func WithMaxBatchBytes(n int) ProducerOpt {
	return ProducerOpt(func(c *config) { c.maxBatchBytes = n })
}

// WithMaxBufferedBytes bounds the bytes of messages waiting in automatic
// batches or in flight (default 32 MiB). A Send that finds the buffer full
// waits for room until its context ends (back-pressure).
func WithMaxBufferedBytes(n int) ProducerOpt {
	return ProducerOpt(func(c *config) { c.maxBufferedBytes = n })
}

// WithMaxMessageSize rejects bodies larger than n before sending (default
// 4 MiB; the broker has its own limit).
func WithMaxMessageSize(n int) ProducerOpt {
	return ProducerOpt(func(c *config) { c.maxMessageSize = n })
}

// WithQueueSelector sets how the producer picks a queue (default
// RoundRobin; see HashSelector for ordered messages).
func WithQueueSelector(s QueueSelector) ProducerOpt {
	return ProducerOpt(func(c *config) {
		if s == nil {
			c.bad("WithQueueSelector: nil selector")
			return
		}
		c.selector = s
	})
}

// WithConsumeFromWhere sets where a group with no committed offset starts
// (default ConsumeFromLastOffset). ConsumeFromTimestamp is for push
// consumers, with WithConsumeTimestamp.
func WithConsumeFromWhere(w ConsumeFrom) ConsumerOpt {
	return ConsumerOpt(func(c *config) { c.consumeFrom = w })
}

// WithConsumeTimestamp sets the start time of ConsumeFromTimestamp.
func WithConsumeTimestamp(t time.Time) PushOpt {
	return PushOpt(func(c *config) { c.consumeTimestamp = t })
}

// WithMaxCachedMessagesPerQueue pauses pulling a queue while this many of
// its messages are pulled but not yet consumed (default 1024).
func WithMaxCachedMessagesPerQueue(n int) PushOpt {
	return PushOpt(func(c *config) { c.maxCachedMessages = n })
}

// WithMaxCachedBytesPerQueue pauses pulling a queue while this many body
// bytes are pulled but not yet consumed (default 64 MiB).
func WithMaxCachedBytesPerQueue(n int) PushOpt {
	return PushOpt(func(c *config) { c.maxCachedBytes = n })
}

// WithOrderly consumes each queue strictly in order, one message at a time,
// holding the queue's lock on the broker.
func WithOrderly(on bool) PushOpt { return PushOpt(func(c *config) { c.orderly = on }) }

// WithBroadcastOffsetDir sets where broadcasting consumers keep their
// offsets between runs (default $HOME/.ferry/offsets; "" keeps them in
// memory only, so a restarted member starts by its ConsumeFrom policy).
func WithBroadcastOffsetDir(dir string) PushOpt {
	return PushOpt(func(c *config) { c.offsetDir = dir })
}

// WithBroadcast makes every member of the group consume every queue;
// offsets are kept in memory and failed messages are not retried.
func WithBroadcast(on bool) PushOpt { return PushOpt(func(c *config) { c.broadcast = on }) }

// WithConsumeGoroutines sets how many handler calls run at once in
// concurrent consumption (default 16).
func WithConsumeGoroutines(n int) PushOpt {
	return PushOpt(func(c *config) { c.consumeGoroutines = n })
}

// WithConsumeBatchSize sets how many messages one handler call gets
// (default 1).
func WithConsumeBatchSize(n int) PushOpt { return PushOpt(func(c *config) { c.consumeBatchSize = n }) }

// WithMaxReconsumeTimes sets how often a failed message is redelivered
// before it goes to the dead-letter queue (default 16).
func WithMaxReconsumeTimes(n int) PushOpt {
	return PushOpt(func(c *config) { c.maxReconsumeTimes = n })
}

// WithPullBatchSize sets the messages asked for per pull (default 64, the
// most a Ferry broker returns by default: pull_max_messages).
func WithPullBatchSize(n int) ConsumerOpt {
	return ConsumerOpt(func(c *config) { c.pullBatchSize = n })
}

// WithLongPollTimeout sets how long the broker may hold an empty pull or
// receive (default 20 s).
func WithLongPollTimeout(d time.Duration) PushOpt {
	return PushOpt(func(c *config) { c.longPoll = d })
}

// WithSuspendInterval sets how long an orderly consumer waits before
// re-consuming a message whose handler failed (default 1 s).
func WithSuspendInterval(d time.Duration) PushOpt {
	return PushOpt(func(c *config) { c.suspendInterval = d })
}

// WithVisibilityTimeout sets how long a message received over HTTP stays
// hidden from other consumers before it is redelivered (default 30 s).
func WithVisibilityTimeout(d time.Duration) PushOpt {
	return PushOpt(func(c *config) { c.visibility = d })
}

// WithHeartbeatInterval sets the heartbeat period (default 30 s).
func WithHeartbeatInterval(d time.Duration) CommonOpt {
	return CommonOpt(func(c *config) { c.heartbeatInterval = d })
}

// WithRebalanceInterval sets the rebalance period (default 20 s); brokers
// also trigger one when the group's membership changes.
func WithRebalanceInterval(d time.Duration) PushOpt {
	return PushOpt(func(c *config) { c.rebalanceInterval = d })
}

// WithRouteRefreshInterval sets how often topic routes are re-read from the
// name servers (default 30 s).
func WithRouteRefreshInterval(d time.Duration) CommonOpt {
	return CommonOpt(func(c *config) { c.routeRefreshInterval = d })
}

// WithCommitInterval sets how often consumed offsets are committed (default
// 5 s; they also ride on pulls).
func WithCommitInterval(d time.Duration) PushOpt {
	return PushOpt(func(c *config) { c.commitInterval = d })
}

var nameRE = regexp.MustCompile(`^[%|a-zA-Z0-9_-]+$`)

// clientKind selects the checks newConfig applies.
type clientKind int8

const (
	kindProducer clientKind = iota
	kindPushConsumer
	kindPullConsumer
)

// newConfig applies opts over the defaults and validates the result: the
// one place options are checked.
func newConfig(kind clientKind, endpoint string, opts []interface{ apply(*config) }) (*config, error) {
	c := &config{
		logger:               nopLogger{},
		sendTimeout:          DefaultSendTimeout,
		retries:              DefaultRetries,
		batchSize:            DefaultBatchSize,
		maxBatchBytes:        DefaultMaxBatchBytes,
		maxBufferedBytes:     DefaultMaxBufferedBytes,
		maxInFlight:          DefaultMaxInFlight,
		maxMessageSize:       DefaultMaxMessageSize,
		selector:             RoundRobin(),
		maxCachedMessages:    DefaultMaxCachedMessages,
		maxCachedBytes:       DefaultMaxCachedBytes,
		consumeGoroutines:    DefaultConsumeGoroutines,
		consumeBatchSize:     1,
		maxReconsumeTimes:    DefaultMaxReconsumeTimes,
		pullBatchSize:        DefaultPullBatchSize,
		longPoll:             DefaultLongPollTimeout,
		suspendInterval:      DefaultSuspendInterval,
		visibility:           DefaultVisibilityTimeout,
		heartbeatInterval:    DefaultHeartbeatInterval,
		rebalanceInterval:    DefaultRebalanceInterval,
		routeRefreshInterval: DefaultRouteRefresh,
		commitInterval:       DefaultCommitInterval,
	}
	if home, err := os.UserHomeDir(); err == nil {
		c.offsetDir = filepath.Join(home, ".ferry", "offsets")
	}
	c.parseEndpoint(endpoint)
	for _, o := range opts {
		if o == nil {
			c.bad("nil option")
			continue
		}
		o.apply(c)
	}
	if c.group == "" && kind == kindProducer {
		c.group = defaultGroup
	}
	switch {
	case c.group == "":
		c.bad("a consumer needs WithGroup")
	case len(c.group) > protocol.MaxGroupLen || !nameRE.MatchString(c.group):
		c.bad("group %q: use letters, digits, '%%', '|', '-' and '_' (at most %d)", c.group, protocol.MaxGroupLen)
	case kind != kindProducer && c.group == "DEFAULT_CONSUMER":
		c.bad("group DEFAULT_CONSUMER is reserved; pick a name for the group")
	}
	if c.producerID != "" && (kind != kindProducer || c.isHTTP()) {
		c.bad("WithIdempotence is for producers on the remoting transport (a name server endpoint)")
	}
	if c.instance != "" && strings.ContainsAny(c.instance, "@ ") {
		c.bad("instance name %q must not contain '@' or spaces", c.instance)
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			c.bad("%s must be positive, got %v", name, d)
		}
	}
	positive("send timeout", c.sendTimeout)
	positive("heartbeat interval", c.heartbeatInterval)
	positive("rebalance interval", c.rebalanceInterval)
	positive("route refresh interval", c.routeRefreshInterval)
	positive("commit interval", c.commitInterval)
	positive("suspend interval", c.suspendInterval)
	positive("visibility timeout", c.visibility)
	if c.longPoll < 0 || c.longPoll > 5*time.Minute {
		c.bad("long-poll timeout %v must be between 0 and 5m", c.longPoll)
	}
	if c.linger < 0 || c.linger > time.Minute {
		c.bad("linger %v must be between 0 (off) and 1m", c.linger)
	}
	if c.retries < 0 || c.retries > 16 {
		c.bad("retries %d must be 0 to 16", c.retries)
	}
	if c.maxInFlight < 1 || c.maxInFlight > 64 {
		c.bad("max in flight %d must be 1 to 64 requests per broker", c.maxInFlight)
	}
	if c.batchSize < 1 || c.batchSize > 4096 {
		c.bad("batch size %d must be 1 to 4096 messages", c.batchSize)
	}
	if c.maxMessageSize < 1 {
		c.bad("max message size %d must be positive", c.maxMessageSize)
	}
	if c.maxBatchBytes < 1024 {
		c.bad("max batch bytes %d must be at least 1 KiB", c.maxBatchBytes)
	}
	if c.maxBufferedBytes < c.maxMessageSize {
		c.bad("max buffered bytes %d must hold at least one message of the max size %d", c.maxBufferedBytes, c.maxMessageSize)
	}
	if c.maxCachedMessages < 1 || c.maxCachedBytes < 1 {
		c.bad("max cached messages and bytes per queue must be positive")
	}
	if c.consumeGoroutines < 1 || c.consumeGoroutines > 1024 {
		c.bad("consume goroutines %d must be 1 to 1024", c.consumeGoroutines)
	}
	if c.consumeBatchSize < 1 || c.consumeBatchSize > 1024 {
		c.bad("consume batch size %d must be 1 to 1024", c.consumeBatchSize)
	}
	if c.pullBatchSize < 1 || c.pullBatchSize > 1024 {
		c.bad("pull batch size %d must be 1 to 1024", c.pullBatchSize)
	}
	if c.maxReconsumeTimes < 0 || c.maxReconsumeTimes > 1000 {
		c.bad("max reconsume times %d must be 0 to 1000", c.maxReconsumeTimes)
	}
	if c.consumeFrom < ConsumeFromLastOffset || c.consumeFrom > ConsumeFromTimestamp {
		c.bad("unknown ConsumeFrom %d", c.consumeFrom)
	}
	switch {
	case c.consumeFrom == ConsumeFromTimestamp && kind == kindPullConsumer:
		// A pull consumer has no way to take the time (WithConsumeTimestamp
		// is a push option) and would start from the first offset.
		c.bad("ConsumeFromTimestamp is for push consumers; a pull consumer starts from the first or last offset")
	case c.consumeFrom == ConsumeFromTimestamp && c.consumeTimestamp.IsZero():
		c.bad("ConsumeFromTimestamp needs WithConsumeTimestamp")
	}
	if c.orderly && c.broadcast {
		c.bad("orderly consumption needs clustering (queue locks); it cannot be combined with broadcasting")
	}
	if c.httpClient == nil {
		// Our own transport, so Close can drop its idle connections (and
		// their goroutines) without touching anyone else's.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.tls
		c.httpClient = &http.Client{Transport: tr}
		c.ownsHTTP = true
	}
	c.httpClient = withBasicAuth(c.httpClient, c.creds)
	if len(c.errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidOption, strings.Join(c.errs, "; "))
	}
	return c, nil
}

func (c *config) parseEndpoint(ep string) {
	ep = strings.TrimSpace(ep)
	if ep == "" {
		c.bad("empty endpoint: want \"ip:port[;ip:port]\" (name servers) or \"http://host:port\" (a broker's HTTP API)")
		return
	}
	if strings.HasPrefix(ep, "http://") || strings.HasPrefix(ep, "https://") {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			c.bad("endpoint %q is not a valid URL", ep)
			return
		}
		c.httpBase = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
		return
	}
	for _, a := range strings.FieldsFunc(ep, func(r rune) bool { return r == ';' || r == ',' }) {
		a = strings.TrimSpace(a)
		if _, err := netip.ParseAddrPort(a); err != nil {
			c.bad("name server %q must be ip:port", a)
			continue
		}
		c.namesrvAddrs = append(c.namesrvAddrs, a)
	}
	if len(c.namesrvAddrs) == 0 && len(c.errs) == 0 {
		c.bad("endpoint %q names no name server", ep)
	}
}

func (c *config) isHTTP() bool { return c.httpBase != "" }

// ErrInvalidOption wraps every option validation failure.
var ErrInvalidOption = errors.New("client: invalid option")
