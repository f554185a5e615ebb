package remoting

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// typedCases are typed headers with the map each must be equivalent to.
var typedCases = []struct {
	name string
	code int16
	h    Header
	want map[string]string
}{
	{"send V1", protocol.ReqSendMessage, &SendHeader{ProducerGroup: "pg", Topic: "T", DefaultTopic: "TBW102",
		DefaultTopicQueueNums: 4, QueueID: 3, BornTimestamp: 1795397092887, Flag: 7, Properties: "TAGS\x01a\x02",
		BrokerName: "b"},
		map[string]string{"producerGroup": "pg", "topic": "T", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": "3", "sysFlag": "0", "bornTimestamp": "1795397092887", "flag": "7", "properties": "TAGS\x01a\x02",
			"reconsumeTimes": "0", "unitMode": "false", "batch": "false", "bname": "b"}},
	{"send V2 batch", protocol.ReqSendBatchMessage, &SendHeader{V2: true, ProducerGroup: "pg", Topic: "T",
		QueueID: -1, SysFlag: 2, ReconsumeTimes: 1, UnitMode: true, HasMaxReconsumeTimes: true, MaxReconsumeTimes: 16,
		Batch: true, Properties: "\"quoted\\\" é"},
		map[string]string{"a": "pg", "b": "T", "c": "", "d": "0", "e": "-1", "f": "2", "g": "0", "h": "0",
			"i": "\"quoted\\\" é", "j": "1", "k": "true", "l": "16", "m": "true"}},
	{"multi", protocol.ReqFerrySendMulti, &SendMultiHeader{ProducerGroup: "pg"}, map[string]string{"a": "pg"}},
	{"pull", protocol.ReqPullMessage, &PullHeader{ConsumerGroup: "cg", Topic: "T", QueueID: 1, QueueOffset: 1 << 40,
		MaxMsgNums: 32, SysFlag: 6, CommitOffset: 9, SuspendTimeoutMillis: 20000, Subscription: "*",
		ExpressionType: "TAG", BrokerName: "b"},
		map[string]string{"consumerGroup": "cg", "topic": "T", "queueId": "1", "queueOffset": "1099511627776",
			"maxMsgNums": "32", "sysFlag": "6", "commitOffset": "9", "suspendTimeoutMillis": "20000",
			"subscription": "*", "subVersion": "0", "expressionType": "TAG", "bname": "b"}},
	{"send answer", protocol.RespSuccess, &SendResponseHeader{MsgID: "A,B", QueueID: 2, QueueOffset: 5,
		MsgRegion: "DefaultRegion", TraceOn: "true"},
		map[string]string{"msgId": "A,B", "queueId": "2", "queueOffset": "5", "MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}},
	{"pull answer", protocol.RespPullNotFound, &PullResponseHeader{NextBeginOffset: 3, MinOffset: 0, MaxOffset: -1},
		map[string]string{"nextBeginOffset": "3", "minOffset": "0", "maxOffset": "-1", "suggestWhichBrokerId": "0"}},
}

// TestTypedHeadersMatchMaps: a typed header encodes, in both serializations,
// to a header that decodes to the same fields as its map form, and the
// typed command answers the accessors as the map would.
func TestTypedHeadersMatchMaps(t *testing.T) {
	for _, tc := range typedCases {
		t.Run(tc.name, func(t *testing.T) {
			typed := NewTypedRequest(tc.code, tc.h, []byte("body"))
			if tc.code == protocol.RespSuccess || tc.code == protocol.RespPullNotFound {
				typed.Flag = FlagResponse
			}
			for k, v := range tc.want {
				if got, ok := typed.Lookup(k); !ok || got != v {
					t.Fatalf("Lookup(%q) on the typed command = %q, %v; want %q", k, got, ok, v)
				}
			}
			if typed.Has("absent") {
				t.Fatal("typed command has a key it does not carry")
			}
			asMap := typed.Clone()
			asMap.Header, asMap.ExtFields = nil, tc.want
			for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
				typed.SerializeType, asMap.SerializeType = st, st
				frame, err := AppendFrame(nil, typed)
				if err != nil {
					t.Fatal(err)
				}
				got, n, err := DecodeFrame(frame, 0)
				if err != nil || n != len(frame) {
					t.Fatalf("%v: decode: %v (%d of %d bytes)", st, err, n, len(frame))
				}
				if !bytes.Equal(got.Body, []byte("body")) {
					t.Fatalf("%v: body %q", st, got.Body)
				}
				if m := normalized(got).ExtFields; !reflect.DeepEqual(m, tc.want) {
					t.Fatalf("%v: decoded\n%q\nwant\n%q", st, m, tc.want)
				}
				mapFrame, err := AppendFrame(nil, asMap)
				if err != nil {
					t.Fatal(err)
				}
				fromMap, _, err := DecodeFrame(mapFrame, 0)
				if err != nil {
					t.Fatal(err)
				}
				assertSameCommand(t, got, fromMap)
			}
		})
	}
}

// TestTypedAndWireEncodingAllocateNothing: encoding a typed header or the
// wire fields of a decoded request allocates nothing beyond the buffer, and
// decoding a hot request allocates no map.
func TestTypedAndWireEncodingAllocateNothing(t *testing.T) {
	buf := make([]byte, 0, 4096)
	for _, tc := range typedCases {
		c := NewTypedRequest(tc.code, tc.h, nil)
		for _, st := range []SerializeType{SerializeJSON, SerializeRocketMQ} {
			c.SerializeType = st
			if a := testing.AllocsPerRun(50, func() { buf, _ = AppendFrame(buf[:0], c) }); a != 0 {
				t.Errorf("%s in %v: %v allocations per encoding", tc.name, st, a)
			}
		}
	}
	dec, err := DecodeJSONHeader([]byte(capturedHeaders[2].json))
	if err != nil || dec.WireFields() == nil {
		t.Fatalf("SEND_BATCH_MESSAGE decoded to %+v, %v", dec, err)
	}
	if a := testing.AllocsPerRun(50, func() { buf = AppendJSONHeader(buf[:0], dec) }); a != 0 {
		t.Errorf("%v allocations per encoding of wire fields", a)
	}
	in := []byte(capturedHeaders[2].json)
	// Three: the header's one string copy, the command with its fields, and
	// nothing per field.
	if a := testing.AllocsPerRun(50, func() { _, _ = DecodeJSONHeader(in) }); a > 2 {
		t.Errorf("%v allocations per decoding of a SEND_BATCH_MESSAGE header", a)
	}
}

// TestSetTurnsFieldsIntoMap: Set on a typed or decoded command keeps every
// field and adds the new one.
func TestSetTurnsFieldsIntoMap(t *testing.T) {
	typed := NewTypedRequest(protocol.ReqFerrySendMulti, &SendMultiHeader{ProducerGroup: "pg"}, nil)
	typed.Set("x", "1")
	if typed.Header != nil || !reflect.DeepEqual(typed.ExtFields, map[string]string{"a": "pg", "x": "1"}) {
		t.Fatalf("typed after Set: %+v", typed)
	}
	dec, err := DecodeJSONHeader([]byte(`{"code":11,"extFields":{"topic":"a","topic":"b","q":"1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := dec.Lookup("topic"); v != "b" {
		t.Fatalf("a repeated key reads %q, want the later one", v)
	}
	dec.Set("q", "2")
	if dec.WireFields() != nil || !reflect.DeepEqual(dec.ExtFields, map[string]string{"topic": "b", "q": "2"}) {
		t.Fatalf("decoded after Set: %+v", dec)
	}
}

// FuzzWireFields: for any header the decoders accept, the wire form answers
// Lookup exactly as the map form does, in both serializations.
func FuzzWireFields(f *testing.F) {
	for _, h := range capturedHeaders {
		f.Add([]byte(h.json))
	}
	f.Add([]byte(`{"code":310,"extFields":{"a":"x","a":"y","b":"\u00e9"}}`))
	f.Add([]byte(`{"extFields":{"z":""},"code":1020}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeJSONHeader(b)
		if err != nil {
			return
		}
		check := func(c *Command) {
			m := normalized(c).ExtFields
			for k, v := range m {
				if got, ok := c.Lookup(k); !ok || got != v {
					t.Fatalf("Lookup(%q) = %q, %v; map has %q (%q)", k, got, ok, v, b)
				}
			}
			for _, f := range c.WireFields() {
				if _, ok := m[f.Key]; !ok {
					t.Fatalf("wire key %q missing from the map (%q)", f.Key, b)
				}
			}
		}
		check(c)
		bin, err := AppendBinaryHeader(nil, c)
		if err != nil {
			return
		}
		c2, err := DecodeBinaryHeader(bin)
		if err != nil {
			t.Fatalf("binary re-decode: %v", err)
		}
		check(c2)
		if m1, m2 := normalized(c).ExtFields, normalized(c2).ExtFields; !reflect.DeepEqual(m1, m2) && (len(m1) > 0 || len(m2) > 0) {
			t.Fatalf("JSON and binary fields differ: %q, %q", m1, m2)
		}
	})
}

// TestWireResponses: a client with WireResponses reads an answer's fields
// from wire fields, without a map; one without it gets the map as before.
func TestWireResponses(t *testing.T) {
	mux := NewMux()
	mux.HandleFunc(protocol.ReqPullMessage, func(c *Conn, req *Command) {
		resp := NewResponse(req, protocol.RespPullNotFound, "")
		resp.Header = &PullResponseHeader{NextBeginOffset: 7, MaxOffset: 7}
		_ = c.Reply(resp)
	})
	_, addr := startServer(t, mux, ServerConfig{})
	for _, wire := range []bool{false, true} {
		cl := newClient(t, ClientConfig{WireResponses: wire})
		resp, err := cl.Invoke(context.Background(), addr, NewTypedRequest(protocol.ReqPullMessage,
			&PullHeader{ConsumerGroup: "g", Topic: "T"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if (resp.WireFields() != nil) != wire || (resp.ExtFields != nil) == wire {
			t.Fatalf("WireResponses %v: wire fields %v, map %v", wire, resp.WireFields(), resp.ExtFields)
		}
		if next, err := resp.Int64("nextBeginOffset"); err != nil || next != 7 {
			t.Fatalf("WireResponses %v: nextBeginOffset %d, %v", wire, next, err)
		}
	}
}
