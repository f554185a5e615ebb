package broker

import (
	"context"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// registerLoop registers the broker with every name server every
// RegisterInterval and soon after a topic changes (Start registers once
// before the broker reports ready).
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
			// Coalesce a burst of topic changes (auto-creation) into one
			// registration.
			select {
			case <-b.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		b.registerAll()
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
		HAServerAddr: b.addr, BrokerID: b.cfg.BrokerID,
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
	h := remoting.UnregisterBrokerHeader{BrokerName: b.cfg.BrokerName, BrokerAddr: b.addr, ClusterName: b.cfg.ClusterName, BrokerID: b.cfg.BrokerID}
	for _, ns := range b.cfg.NamesrvAddrs {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := remoting.UnregisterBroker(c, b.nsClient, ns, h); err != nil {
			b.log.Warn().Err(err).Str("namesrv", ns).Msg("unregister from name server failed")
		}
		cancel()
	}
}
