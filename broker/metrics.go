package broker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferrymq/ferry/remoting"
)

// metrics are the broker's Prometheus metrics, named as RocketMQ 5 names
// them so existing dashboards apply.
type metrics struct {
	reg           *prometheus.Registry
	msgIn         *prometheus.CounterVec
	bytesIn       *prometheus.CounterVec
	msgOut        *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	rpcLatency    *prometheus.HistogramVec
	msgInTotal    prometheus.Counter
	msgOutTotal   prometheus.Counter
	duplicates    *prometheus.CounterVec // by kind: idempotent, dedup_window
	rpcCodeLabels map[int16]string
}

func newMetrics(b *Broker) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		msgIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rocketmq_messages_in_total",
			Help: "Messages stored, by topic."}, []string{"topic"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rocketmq_throughput_in_total",
			Help: "Message body bytes stored, by topic."}, []string{"topic"}),
		msgOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rocketmq_messages_out_total",
			Help: "Messages delivered by pulls, by topic and consumer group."}, []string{"topic", "consumer_group"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rocketmq_throughput_out_total",
			Help: "Stored bytes delivered by pulls, by topic and consumer group."}, []string{"topic", "consumer_group"}),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rocketmq_rpc_latency",
			Help:    "Time to handle a remoting request, in milliseconds (a held pull counts until it is parked).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000}}, []string{"request_code"}),
		msgInTotal:    prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_messages_in_all_total", Help: "Messages stored."}),
		msgOutTotal:   prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_messages_out_all_total", Help: "Messages delivered."}),
		rpcCodeLabels: map[int16]string{},
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_duplicates_dropped_total",
			Help: "Messages not stored again because they were stored before: idempotent retries, or copies within a topic's dedup window."},
			[]string{"kind"}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.msgIn, m.bytesIn, m.msgOut, m.bytesOut, m.rpcLatency, m.msgInTotal, m.msgOutTotal, m.duplicates,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		gauge("rocketmq_topic_number", "Topics on this broker.", func() float64 { return float64(b.topics.count()) }),
		gauge("rocketmq_consumer_group_number", "Consumer groups configured.", func() float64 { return float64(len(b.groups.all())) }),
		gauge("rocketmq_producer_connections", "Producer client instances online.", func() float64 { p, _ := b.clients.counts(); return float64(p) }),
		gauge("rocketmq_consumer_connections", "Consumer client instances online.", func() float64 { _, c := b.clients.counts(); return float64(c) }),
		gauge("ferry_pulls_held", "Pulls held by long polling now.", func() float64 { return float64(b.holds.heldCount()) }),
		gauge("rocketmq_storage_size", "Bytes of commitlog kept.", func() float64 { return float64(b.clog.WrittenOffset() - b.clog.MinOffset()) }),
		gauge("rocketmq_storage_flush_behind_bytes", "Commitlog bytes written but not yet synced.", func() float64 {
			return float64(b.clog.WrittenOffset() - b.clog.FlushedOffset())
		}),
		gauge("rocketmq_storage_dispatch_behind_bytes", "Commitlog bytes not yet in the consume queues.", func() float64 {
			return float64(b.clog.VisibleOffset() - b.cq.DispatchedOffset())
		}),
		gauge("ferry_index_behind_bytes", "Commitlog bytes in the consume queues but not yet in the key and timer indexes.", func() float64 {
			return float64(b.cq.DispatchedOffset() - b.cq.FedOffset())
		}),
		gauge("ferry_dispatch_no_space", "1 while the consume queues wait for disk space to index new messages.", func() float64 {
			if b.cq.NoSpace() {
				return 1
			}
			return 0
		}),
		gauge("ferry_broker_writable", "1 while the broker accepts sends.", func() float64 {
			if b.writable() == "" {
				return 1
			}
			return 0
		}),
	)
	return m
}

func (m *metrics) messagesIn(topic string, n, bytes int) {
	m.msgIn.WithLabelValues(topic).Add(float64(n))
	m.bytesIn.WithLabelValues(topic).Add(float64(bytes))
	m.msgInTotal.Add(float64(n))
}

func (m *metrics) messagesOut(topic, group string, n, bytes int) {
	m.msgOut.WithLabelValues(topic, group).Add(float64(n))
	m.bytesOut.WithLabelValues(topic, group).Add(float64(bytes))
	m.msgOutTotal.Add(float64(n))
}

func (m *metrics) inTotal() float64  { return counterValue(m.msgInTotal) }
func (m *metrics) outTotal() float64 { return counterValue(m.msgOutTotal) }

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}

// instrument times a handler.
func (m *metrics) instrument(code int16, f func(*remoting.Conn, *remoting.Command)) remoting.Handler {
	obs := m.rpcLatency.WithLabelValues(strconv.Itoa(int(code)))
	return remoting.HandlerFunc(func(c *remoting.Conn, req *remoting.Command) {
		start := time.Now()
		f(c, req)
		obs.Observe(float64(time.Since(start).Microseconds()) / 1000)
	})
}
