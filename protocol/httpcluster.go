package protocol

import "encoding/json"

// DrainedReason is the not_writable_reason of a broker an operator
// drained (GET /v1/broker); the cluster view marks such a broker drained.
const DrainedReason = "broker is drained by an operator"

// The HTTP API's cluster view (GET /v1/cluster, /v1/cluster/groups) and
// rate history (GET /v1/broker/stats).

// HTTPStatsPoint is one interval's rates, per second, ending at AtMs (GET
// /v1/broker/stats).
type HTTPStatsPoint struct {
	AtMs         int64   `json:"at_ms"`
	MsgInRate    float64 `json:"msg_in_per_s"`
	MsgOutRate   float64 `json:"msg_out_per_s"`
	BytesInRate  float64 `json:"bytes_in_per_s"`
	BytesOutRate float64 `json:"bytes_out_per_s"`
}

// HTTPClusterBroker is one broker of GET /v1/cluster.
type HTTPClusterBroker struct {
	Cluster    string `json:"cluster"`
	BrokerName string `json:"broker_name"`
	BrokerID   int64  `json:"broker_id"`
	Addr       string `json:"addr"`
	// HTTPAddr is where the broker serves HTTP, as it registered it; empty
	// for a broker that serves none (or does not tell, as RocketMQ's).
	HTTPAddr string `json:"http_addr,omitempty"`
	// Self marks the broker that answered the request.
	Self bool `json:"self"`
	// Reachable is false when the broker's HTTP API did not answer; Error
	// says why and the fields below are left empty.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`

	Role              string  `json:"role"` // "master" or "slave"
	Version           string  `json:"version,omitempty"`
	Flush             string  `json:"flush,omitempty"`
	Writable          bool    `json:"writable"`
	NotWritableReason string  `json:"not_writable_reason,omitempty"`
	Drained           bool    `json:"drained"`
	DiskUsedRatio     float64 `json:"disk_used_ratio"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	Topics            int     `json:"topics"`
	Groups            int     `json:"groups"`
	Producers         int     `json:"producers"`
	Consumers         int     `json:"consumers"`
	CommitlogMin      int64   `json:"commitlog_min_offset"`
	CommitlogMax      int64   `json:"commitlog_max_offset"`
	MsgInTotal        float64 `json:"msg_in_total"`
	MsgOutTotal       float64 `json:"msg_out_total"`
	MsgInPerSec       float64 `json:"msg_in_per_s"`
	MsgOutPerSec      float64 `json:"msg_out_per_s"`
	BytesInPerSec     float64 `json:"bytes_in_per_s"`
	BytesOutPerSec    float64 `json:"bytes_out_per_s"`
	// Replication is the broker's own "replication" object of GET
	// /v1/broker, passed through as it is, when it reports one.
	Replication json.RawMessage `json:"replication,omitempty"`
	// Points is the broker's rate history, as GET /v1/broker/stats has it.
	Points json.RawMessage `json:"points,omitempty"`
}

// HTTPCluster is GET /v1/cluster.
type HTTPCluster struct {
	Brokers []HTTPClusterBroker `json:"brokers"`
	// NamesrvError says why the name servers could not be asked; the list
	// then holds this broker alone.
	NamesrvError string `json:"namesrv_error,omitempty"`
}

// HTTPClusterGroup is one group of GET /v1/cluster/groups.
type HTTPClusterGroup struct {
	Name string `json:"name"`
	// Lag is the sum over the masters that have the group.
	Lag int64 `json:"lag"`
	// ByBroker is the lag on each master that has the group, by broker
	// name.
	ByBroker map[string]int64 `json:"by_broker"`
}

// HTTPClusterGroups is GET /v1/cluster/groups.
type HTTPClusterGroups struct {
	Groups []HTTPClusterGroup `json:"groups"`
	// Brokers are the masters asked; an unreachable one is marked, its
	// lag left out of the sums.
	Brokers      []HTTPClusterBroker `json:"brokers"`
	NamesrvError string              `json:"namesrv_error,omitempty"`
}
