package broker

import (
	"errors"
	"testing"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestParseSendHeaderForms: a send header reads the same from the wire
// fields of a decoded request, from a map and from a typed header, in both
// key namings; a bad or missing field is refused in every form.
func TestParseSendHeaderForms(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		code := int16(protocol.ReqSendMessage)
		if v2 {
			code = protocol.ReqSendMessageV2
		}
		typed := remoting.NewTypedRequest(code, &remoting.SendHeader{V2: v2, ProducerGroup: "pg", Topic: "T",
			DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 3, SysFlag: 1, BornTimestamp: 1795397092887,
			Flag: 9, Properties: "A\x01b\x02", ReconsumeTimes: 2, HasMaxReconsumeTimes: true, MaxReconsumeTimes: 5,
			Batch: true}, nil)
		frame, err := remoting.AppendFrame(nil, typed)
		if err != nil {
			t.Fatal(err)
		}
		wire, _, err := remoting.DecodeFrame(frame, 0)
		if err != nil || wire.WireFields() == nil {
			t.Fatalf("decoded %+v, %v", wire, err)
		}
		asMap := wire.Clone()
		asMap.ExtFieldMap()
		want := sendHeader{producerGroup: "pg", topic: "T", defaultTopic: "TBW102", defaultQueueNums: 4, queueID: 3,
			sysFlag: 1, bornTimestamp: 1795397092887, flag: 9, properties: "A\x01b\x02", reconsumeTimes: 2,
			maxReconsumeTimes: 5, hasMaxReconsume: true, batch: true}
		for name, c := range map[string]*remoting.Command{"typed": typed, "wire": wire, "map": asMap} {
			got, err := parseSendHeader(c)
			if err != nil || got != want {
				t.Fatalf("v2=%v %s: %+v, %v; want %+v", v2, name, got, err, want)
			}
		}
		bad := wire.Clone()
		key := "queueId"
		if v2 {
			key = "e"
		}
		bad.Set(key, "x")
		if _, err := parseSendHeader(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("v2=%v: bad queueId gave %v", v2, err)
		}
		delete(bad.ExtFields, key)
		if _, err := parseSendHeader(bad); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("v2=%v: missing queueId gave %v", v2, err)
		}
	}
}
