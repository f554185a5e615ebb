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
