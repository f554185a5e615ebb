package broker

import (
	"context"
	"sync"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// registerWaitTimeout bounds how long a change waits for the name
// servers to hear of it (registerWait).
const registerWaitTimeout = 3 * time.Second

// regRounds lets a change wait for a registration that began after it.
type regRounds struct {
	mu    sync.Mutex
	asked uint64        // registrations asked for by registerWait
	done  uint64        // the highest ask a finished registration covers
	wake  chan struct{} // closed, and replaced, when done advances
}

// registerLoop registers the broker with every name server every
// RegisterInterval and at once when asked (Start registers once before
// the broker reports ready). Changes asked for while a registration runs
// are covered together by the next one.
func (b *Broker) registerLoop() {
	defer b.wg.Done()
	tick := time.NewTicker(b.cfg.RegisterInterval.D())
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		case <-b.registerNow:
		}
		b.reg.mu.Lock()
		asked := b.reg.asked
		b.reg.mu.Unlock()
		b.registerAll()
		b.reg.mu.Lock()
		if asked > b.reg.done {
			b.reg.done = asked
			close(b.reg.wake)
			b.reg.wake = make(chan struct{})
		}
		b.reg.mu.Unlock()
	}
}

// registerWait tells the name servers of the broker's topics and state
// now: it asks for a registration and waits until one that began after
// the call has ended (each name server answered or failed), for at most
// registerWaitTimeout. A topic created, changed or deleted, or a drain,
// is so routable as it is when the call that made it returns. Before
// Start has registered (no loop yet) it returns at once.
func (b *Broker) registerWait() {
	if len(b.cfg.NamesrvAddrs) == 0 || !b.registering.Load() {
		return
	}
	b.reg.mu.Lock()
	b.reg.asked++
	my, wake := b.reg.asked, b.reg.wake
	b.reg.mu.Unlock()
	b.triggerRegister()
	t := time.NewTimer(registerWaitTimeout)
	defer t.Stop()
	for {
		select {
		case <-wake:
			b.reg.mu.Lock()
			done := b.reg.done >= my
			wake = b.reg.wake
			b.reg.mu.Unlock()
			if done {
				return
			}
		case <-t.C:
			b.log.Warn().Dur("waited", registerWaitTimeout).Msg("name servers not told of a change in time; the next registration carries it")
			return
		case <-b.stop:
			return
		}
	}
}

// triggerRegister asks the loop to re-register soon.
func (b *Broker) triggerRegister() {
	select {
	case b.registerNow <- struct{}{}:
	default:
	}
}

func (b *Broker) registerHeader() remoting.RegisterBrokerHeader {
	return remoting.RegisterBrokerHeader{
		BrokerName: b.cfg.BrokerName, BrokerAddr: b.addr, ClusterName: b.cfg.ClusterName,
		HAServerAddr: b.addr, BrokerID: b.repl.brokerID(), HTTPAddr: b.httpAdvertised(),
	}
}

// registerAll sends REGISTER_BROKER to each name server in parallel.
func (b *Broker) registerAll() {
	if len(b.cfg.NamesrvAddrs) == 0 {
		return
	}
	topics, version := b.topics.snapshot()
	if why := b.writable(); why != "" {
		// A broker that cannot take writes advertises its queues read-only,
		// so producers go elsewhere while consumers drain it.
		for k, tc := range topics {
			tc.Perm &^= protocol.PermWrite
			topics[k] = tc
		}
	}
	body := &remoting.RegisterBrokerBody{TopicConfigSerializeWrapper: remoting.TopicConfigSerializeWrapper{
		TopicConfigTable: topics, DataVersion: version}}
	h := b.registerHeader()
	done := make(chan struct{}, len(b.cfg.NamesrvAddrs))
	for _, ns := range b.cfg.NamesrvAddrs {
		go func() {
			defer func() { done <- struct{}{} }()
			ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
			defer cancel()
			if _, err := remoting.RegisterBroker(ctx, b.nsClient, ns, h, body); err != nil {
				b.log.Warn().Err(err).Str("namesrv", ns).Msg("register with name server failed")
				return
			}
			b.log.Debug().Str("namesrv", ns).Int("topics", len(topics)).Msg("registered with name server")
		}()
	}
	for range b.cfg.NamesrvAddrs {
		<-done
	}
}

// unregister tells every name server the broker is leaving.
func (b *Broker) unregister(ctx context.Context) {
	if b.nsClient == nil {
		return
	}
	h := remoting.UnregisterBrokerHeader{BrokerName: b.cfg.BrokerName, BrokerAddr: b.addr, ClusterName: b.cfg.ClusterName, BrokerID: b.repl.brokerID()}
	for _, ns := range b.cfg.NamesrvAddrs {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := remoting.UnregisterBroker(c, b.nsClient, ns, h); err != nil {
			b.log.Warn().Err(err).Str("namesrv", ns).Msg("unregister from name server failed")
		}
		cancel()
	}
}
