package remoting

import (
	"context"
	"net"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

func BenchmarkEncodeJSONFrame(b *testing.B) {
	c, _ := DecodeJSONHeader([]byte(capturedHeaders[1].json))
	c.Body = make([]byte, 1024)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSONFrame(b *testing.B) {
	c, _ := DecodeJSONHeader([]byte(capturedHeaders[1].json))
	c.Body = make([]byte, 1024)
	frame, _ := AppendFrame(nil, c)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeFrame(frame, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBinaryFrame(b *testing.B) {
	c, _ := DecodeJSONHeader([]byte(capturedHeaders[1].json))
	c.SerializeType = SerializeRocketMQ
	c.Body = make([]byte, 1024)
	frame, _ := AppendFrame(nil, c)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeFrame(frame, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInvokeParallel: request/response round trips over one loopback
// connection from many goroutines (exercises writev coalescing).
func BenchmarkInvokeParallel(b *testing.B) {
	mux := NewMux()
	mux.HandleFunc(protocol.ReqHeartBeat, func(c *Conn, req *Command) { _ = c.Reply(NewResponse(req, protocol.RespSuccess, "")) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(mux, ServerConfig{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	cl := NewClient(ClientConfig{})
	addr := ln.Addr().String()
	body := make([]byte, 1024)
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cl.Invoke(context.Background(), addr, NewRequest(protocol.ReqHeartBeat, nil, body)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	_ = cl.Close()
	_ = srv.Shutdown(context.Background())
	<-served
}

// The produce and consume requests as the SDK builds and encodes them: a
// typed header written in its fixed order.

func BenchmarkBuildSendRequest(b *testing.B) {
	body := make([]byte, 1024)
	props := "TAGS\x01TagA\x02UNIQ_KEY\x01C0000202669B0000000071999aa00001\x02"
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		req := NewTypedRequest(protocol.ReqSendMessage, &SendHeader{ProducerGroup: "pg", Topic: "TopicTest",
			DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 1, BornTimestamp: 1795397092887,
			Properties: props, BrokerName: "broker-a"}, body)
		var err error
		if buf, err = AppendFrame(buf[:0], req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildPullRequest(b *testing.B) {
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		req := NewTypedRequest(protocol.ReqPullMessage, &PullHeader{ConsumerGroup: "cg1", Topic: "TopicTest",
			QueueOffset: 123456, MaxMsgNums: 32, SysFlag: 6, SuspendTimeoutMillis: 20000, Subscription: "*",
			ExpressionType: "TAG", BrokerName: "broker-a"}, nil)
		var err error
		if buf, err = AppendFrame(buf[:0], req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeHotFrames decodes the captured SEND_MESSAGE,
// SEND_BATCH_MESSAGE and PULL_MESSAGE frames and reads every field the
// broker reads.
func BenchmarkDecodeHotFrames(b *testing.B) {
	var frames [][]byte
	for _, i := range []int{1, 2, 3} {
		c, _ := DecodeJSONHeader([]byte(capturedHeaders[i].json))
		c.Body = make([]byte, 1024)
		f, _ := AppendFrame(nil, c)
		frames = append(frames, f)
	}
	keys := []string{"topic", "queueId", "b", "e", "g", "i", "queueOffset", "maxMsgNums", "sysFlag", "properties"}
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frames {
			c, _, err := DecodeFrame(f, 0)
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range keys {
				_ = c.StringOr(k, "")
			}
		}
	}
}

// BenchmarkDecodePullResponse decodes a PULL_MESSAGE answer header and reads
// its offsets, into a map (map) and into wire fields (wire, as a client with
// WireResponses does).
func BenchmarkDecodePullResponse(b *testing.B) {
	resp := NewTypedRequest(protocol.RespSuccess, &PullResponseHeader{NextBeginOffset: 123456, MinOffset: 0, MaxOffset: 123460}, nil)
	resp.Flag = FlagResponse
	frame, _ := AppendFrame(nil, resp)
	for _, wire := range []bool{false, true} {
		name := "map"
		if wire {
			name = "wire"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := decodePayload(frame[4:], wire)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Int64("nextBeginOffset"); err != nil {
					b.Fatal(err)
				}
				_, _ = c.Int64Or("minOffset", 0)
				_, _ = c.Int64Or("maxOffset", 0)
			}
		})
	}
}
