package admin

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/ferrymq/ferry/client"

	"github.com/ferrymq/ferry/protocol"
)

// BrokerStatus is one broker's run-time status.
type BrokerStatus struct {
	Cluster            string  `json:"cluster"`
	BrokerName         string  `json:"broker_name"`
	BrokerID           int64   `json:"broker_id"`
	Addr               string  `json:"addr"`
	Role               string  `json:"role"` // master or slave
	Version            string  `json:"version"`
	Flush              string  `json:"flush"`
	Writable           bool    `json:"writable"`
	NotWritableReason  string  `json:"not_writable_reason,omitempty"`
	UptimeSeconds      float64 `json:"uptime_seconds"`
	CommitlogMinOffset int64   `json:"commitlog_min_offset"`
	CommitlogMaxOffset int64   `json:"commitlog_max_offset"`
	DiskUsedRatio      float64 `json:"disk_used_ratio"`
	Topics             int     `json:"topics"`
	Groups             int     `json:"groups"`
	Producers          int     `json:"producers"`
	Consumers          int     `json:"consumers"`
	MsgInTotal         float64 `json:"msg_in_total"`
	MsgOutTotal        float64 `json:"msg_out_total"`
	// MsgInPerSec and MsgOutPerSec are measured over the sample interval
	// given to Brokers, or averaged since start without one.
	MsgInPerSec  float64 `json:"msg_in_per_sec"`
	MsgOutPerSec float64 `json:"msg_out_per_sec"`
	// Replication is the broker's part in its replicated group (role,
	// epoch, in-sync set, its slaves' or its own lag, catch-up); nil for a
	// standalone broker.
	Replication *protocol.ReplicationStatus `json:"replication,omitempty"`
	// Error is set, and the rest left empty, for a broker that did not
	// answer.
	Error string `json:"error,omitempty"`
}

// Brokers returns the status of every broker the name servers list. With
// sample > 0 it reads the counters twice, sample apart, to measure rates.
// A broker that does not answer gets Error set; it is not a failure of the
// call.
func (a *Admin) Brokers(ctx context.Context, sample time.Duration) ([]BrokerStatus, error) {
	if a.h != nil {
		return a.h.brokers(ctx, sample)
	}
	bs, err := a.r.brokers(ctx)
	if err != nil {
		return nil, err
	}
	first := a.r.runtimes(ctx, bs)
	if sample <= 0 {
		for i := range first {
			if up := first[i].UptimeSeconds; up > 0 {
				first[i].MsgInPerSec, first[i].MsgOutPerSec = first[i].MsgInTotal/up, first[i].MsgOutTotal/up
			}
		}
		return first, nil
	}
	t0 := time.Now()
	select {
	case <-time.After(sample):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	second := a.r.runtimes(ctx, bs)
	secs := time.Since(t0).Seconds()
	for i := range second {
		if second[i].Error == "" && first[i].Error == "" {
			second[i].MsgInPerSec = (second[i].MsgInTotal - first[i].MsgInTotal) / secs
			second[i].MsgOutPerSec = (second[i].MsgOutTotal - first[i].MsgOutTotal) / secs
		}
	}
	return second, nil
}

func (a *remotingAdmin) runtimes(ctx context.Context, bs []adminBroker) []BrokerStatus {
	out := make([]BrokerStatus, len(bs))
	for i, b := range bs {
		s, err := a.runtime(ctx, b)
		if err != nil {
			s = BrokerStatus{Error: err.Error()}
		}
		s.Cluster, s.BrokerName, s.BrokerID, s.Addr, s.Role = b.Cluster, b.Name, b.ID, b.Addr, adminRole(b.ID)
		out[i] = s
	}
	return out
}

func adminRole(id int64) string {
	if id == 0 {
		return "master"
	}
	return "slave"
}

func (a *remotingAdmin) runtime(ctx context.Context, b adminBroker) (BrokerStatus, error) {
	var r protocol.BrokerRuntime
	err := a.invokeJSON(ctx, b.Addr, protocol.ReqGetBrokerRuntimeInfo, nil, nil, &r)
	return brokerStatusOf(&r), err
}

// brokerStatusOf is the status a broker's runtime answer reports.
func brokerStatusOf(r *protocol.BrokerRuntime) BrokerStatus {
	s := BrokerStatus{Cluster: r.ClusterName, BrokerName: r.BrokerName, BrokerID: r.BrokerID, Addr: r.Addr,
		Role: adminRole(r.BrokerID), Version: r.Version, Flush: r.Flush, Writable: r.Writable,
		NotWritableReason: r.NotWritableWhy, UptimeSeconds: r.UptimeSeconds, CommitlogMinOffset: r.CommitlogMin,
		CommitlogMaxOffset: r.CommitlogMax, DiskUsedRatio: r.DiskUsedRatio, Topics: r.Topics, Groups: r.Groups,
		Producers: r.Producers, Consumers: r.Consumers, MsgInTotal: r.MsgInTotal, MsgOutTotal: r.MsgOutTotal}
	if r.Replication.Role != "" && r.Replication.Role != "standalone" {
		rs := r.Replication
		s.Replication = &rs
	}
	return s
}

// BrokerConfig is one broker's configuration in force (TOML key → value).
type BrokerConfig struct {
	BrokerName string            `json:"broker_name"`
	Addr       string            `json:"addr"`
	Config     map[string]string `json:"config"`
}

// BrokerConfigs returns the configuration of the selected brokers (names or
// addresses; none selects every master).
func (a *Admin) BrokerConfigs(ctx context.Context, brokers ...string) ([]BrokerConfig, error) {
	if a.h != nil {
		return a.h.brokerConfigs(ctx, brokers)
	}
	bs, err := a.r.masters(ctx, brokers)
	if err != nil {
		return nil, err
	}
	var out []BrokerConfig
	for _, b := range bs {
		m := map[string]string{}
		if err := a.r.invokeJSON(ctx, b.Addr, protocol.ReqGetBrokerConfig, nil, nil, &m); err != nil {
			return nil, adminBrokerErr(b, err)
		}
		out = append(out, BrokerConfig{BrokerName: b.Name, Addr: b.Addr, Config: m})
	}
	return out, nil
}

// SetBrokerConfig changes run-time configurable keys on the selected
// brokers (none selects every master). The broker refuses keys that need a
// restart, naming the ones it can change.
func (a *Admin) SetBrokerConfig(ctx context.Context, kv map[string]string, brokers ...string) error {
	if a.h != nil {
		return a.h.setBrokerConfig(ctx, kv, brokers)
	}
	body, err := json.Marshal(kv)
	if err != nil {
		return err
	}
	bs, err := a.r.masters(ctx, brokers)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if _, err := a.r.invoke(ctx, b.Addr, protocol.ReqUpdateBrokerConfig, nil, body); err != nil {
			return adminBrokerErr(b, err)
		}
	}
	return nil
}

// Drain makes the selected brokers stop accepting sends (they register
// their queues read-only, so producers move elsewhere while consumers
// empty them); Undrain resumes. None selects every master.
func (a *Admin) Drain(ctx context.Context, brokers ...string) error {
	if a.h != nil {
		return a.h.drain(ctx, true, brokers)
	}
	return a.r.drain(ctx, true, brokers)
}

// Undrain resumes accepting sends on the selected brokers.
func (a *Admin) Undrain(ctx context.Context, brokers ...string) error {
	if a.h != nil {
		return a.h.drain(ctx, false, brokers)
	}
	return a.r.drain(ctx, false, brokers)
}

func (a *remotingAdmin) drain(ctx context.Context, on bool, brokers []string) error {
	code := int16(protocol.ReqFerryUndrain)
	if on {
		code = protocol.ReqFerryDrain
	}
	bs, err := a.masters(ctx, brokers)
	if err != nil {
		return err
	}
	for _, b := range bs {
		if _, err := a.invoke(ctx, b.Addr, code, nil, nil); err != nil {
			return adminBrokerErr(b, err)
		}
	}
	return nil
}

// adminBrokerErr says which broker failed.
func adminBrokerErr(b adminBroker, err error) error {
	return &BrokerError{Broker: b.Name, Addr: b.Addr, Err: err}
}

// BrokerError is a failure of one broker in a fanned-out operation.
type BrokerError struct {
	Broker, Addr string
	Err          error
}

func (e *BrokerError) Error() string {
	var se *client.ServerError
	if errors.As(e.Err, &se) && se.Status == 0 {
		if se.Code == protocol.RespSystemError && se.Remark != "" {
			// The remark is the reason: SYSTEM_ERROR is how the protocol
			// carries any refusal without a code of its own.
			return "broker " + e.Broker + " (" + e.Addr + "): " + se.Remark
		}
		return "broker " + e.Broker + " (" + e.Addr + ") answered " + protocol.ResponseName(int16(se.Code)) + ": " + se.Remark
	}
	return "broker " + e.Broker + " (" + e.Addr + "): " + e.Err.Error()
}

func (e *BrokerError) Unwrap() error { return e.Err }

// adminSortedKeys returns m's keys sorted.
func adminSortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
