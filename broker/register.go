package broker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// registerWaitTimeout bounds how long a change waits for the name
// servers to hear of it (registrar.wait).
const registerWaitTimeout = 3 * time.Second

// regRounds lets a change wait for a registration that began after it.
type regRounds struct {
	mu    sync.Mutex
	asked uint64        // registrations asked for by wait
	done  uint64        // the highest ask a finished registration covers
	wake  chan struct{} // closed, and replaced, when done advances
}

// registrar keeps the name servers told of the broker: its address, its
// topics, and whether they take writes. It registers at start, every
// RegisterInterval and at once when asked (trigger); a change that must be
// routable when the call that made it returns waits for it (wait).
type registrar struct {
	cfg      *Config // the name servers, the interval, the broker's names
	log      zerolog.Logger
	topics   *topicTable
	writable func() string // why sends are refused, "" when they are accepted
	brokerID func() int64  // the id registered (a replica's follows its role)
	httpAddr func() string // the HTTP address registered, "" without HTTP
	stop     <-chan struct{}

	addr   string           // the advertised address (start)
	client *remoting.Client // nil until start

	now     chan struct{} // 1-slot: re-register with the name servers now
	rounds  regRounds     // registrations asked for and done
	running atomic.Bool   // the registration loop runs
}

func newRegistrar(b *Broker) *registrar {
	return &registrar{
		cfg: &b.cfg, log: b.log, topics: b.topics, writable: b.writable,
		brokerID: func() int64 { return b.repl.brokerID() }, httpAddr: b.httpAdvertised, stop: b.stop,
		now: make(chan struct{}, 1), rounds: regRounds{wake: make(chan struct{})},
	}
}

// start registers once, as addr over client; then loop may run.
func (r *registrar) start(addr string, client *remoting.Client) {
	r.addr, r.client = addr, client
	r.registerAll()
	r.running.Store(true)
}

// loop registers the broker with every name server every
// RegisterInterval and at once when asked (start registers once before
// the broker reports ready), until stop is closed. Changes asked for while
// a registration runs are covered together by the next one.
func (r *registrar) loop() {
	tick := time.NewTicker(r.cfg.RegisterInterval.D())
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		case <-r.now:
		}
		r.rounds.mu.Lock()
		asked := r.rounds.asked
		r.rounds.mu.Unlock()
		r.registerAll()
		r.rounds.mu.Lock()
		if asked > r.rounds.done {
			r.rounds.done = asked
			close(r.rounds.wake)
			r.rounds.wake = make(chan struct{})
		}
		r.rounds.mu.Unlock()
	}
}

// wait tells the name servers of the broker's topics and state
// now: it asks for a registration and waits until one that began after
// the call has ended (each name server answered or failed), for at most
// registerWaitTimeout. A topic created, changed or deleted, or a drain,
// is so routable as it is when the call that made it returns. Before
// start has registered (no loop yet) it returns at once.
func (r *registrar) wait() {
	if len(r.cfg.NamesrvAddrs) == 0 || !r.running.Load() {
		return
	}
	r.rounds.mu.Lock()
	r.rounds.asked++
	my, wake := r.rounds.asked, r.rounds.wake
	r.rounds.mu.Unlock()
	r.trigger()
	t := time.NewTimer(registerWaitTimeout)
	defer t.Stop()
	for {
		select {
		case <-wake:
			r.rounds.mu.Lock()
			done := r.rounds.done >= my
			wake = r.rounds.wake
			r.rounds.mu.Unlock()
			if done {
				return
			}
		case <-t.C:
			r.log.Warn().Dur("waited", registerWaitTimeout).Msg("name servers not told of a change in time; the next registration carries it")
			return
		case <-r.stop:
			return
		}
	}
}

// trigger asks the loop to re-register soon.
func (r *registrar) trigger() {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

func (r *registrar) header() remoting.RegisterBrokerHeader {
	return remoting.RegisterBrokerHeader{
		BrokerName: r.cfg.BrokerName, BrokerAddr: r.addr, ClusterName: r.cfg.ClusterName,
		HAServerAddr: r.addr, BrokerID: r.brokerID(), HTTPAddr: r.httpAddr(),
	}
}

// registerAll sends REGISTER_BROKER to each name server in parallel.
func (r *registrar) registerAll() {
	if len(r.cfg.NamesrvAddrs) == 0 {
		return
	}
	topics, version := r.topics.snapshot()
	if why := r.writable(); why != "" {
		// A broker that cannot take writes advertises its queues read-only,
		// so producers go elsewhere while consumers drain it.
		for k, tc := range topics {
			tc.Perm &^= protocol.PermWrite
			topics[k] = tc
		}
	}
	body := &remoting.RegisterBrokerBody{TopicConfigSerializeWrapper: remoting.TopicConfigSerializeWrapper{
		TopicConfigTable: topics, DataVersion: version}}
	h := r.header()
	done := make(chan struct{}, len(r.cfg.NamesrvAddrs))
	for _, ns := range r.cfg.NamesrvAddrs {
		go func() {
			defer func() { done <- struct{}{} }()
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			defer cancel()
			if _, err := remoting.RegisterBroker(ctx, r.client, ns, h, body); err != nil {
				r.log.Warn().Err(err).Str("namesrv", ns).Msg("register with name server failed")
				return
			}
			r.log.Debug().Str("namesrv", ns).Int("topics", len(topics)).Msg("registered with name server")
		}()
	}
	for range r.cfg.NamesrvAddrs {
		<-done
	}
}

// unregister tells every name server the broker is leaving.
func (r *registrar) unregister(ctx context.Context) {
	if r.client == nil {
		return
	}
	h := remoting.UnregisterBrokerHeader{BrokerName: r.cfg.BrokerName, BrokerAddr: r.addr, ClusterName: r.cfg.ClusterName, BrokerID: r.brokerID()}
	for _, ns := range r.cfg.NamesrvAddrs {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := remoting.UnregisterBroker(c, r.client, ns, h); err != nil {
			r.log.Warn().Err(err).Str("namesrv", ns).Msg("unregister from name server failed")
		}
		cancel()
	}
}
