package dlq

import (
	"net/netip"
	"testing"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

func TestDecide(t *testing.T) {
	cases := []struct {
		reconsume, max, requested int32
		levels                    int
		want                      Decision
	}{
		{0, 16, 0, 18, Decision{Level: 3}},   // first failure: 10 s
		{1, 16, 0, 18, Decision{Level: 4}},   // 30 s
		{15, 16, 0, 18, Decision{Level: 18}}, // capped at 2 h
		{16, 16, 0, 18, Decision{DLQ: true}}, // the 17th failure
		{2, 16, -1, 18, Decision{DLQ: true}}, // the consumer asks for the DLQ
		{0, 0, 0, 18, Decision{DLQ: true}},   // no retries at all
		{0, 16, 5, 18, Decision{Level: 5}},   // an explicit level
		{3, 16, 0, 4, Decision{Level: 4}},    // a short table
	}
	for _, c := range cases {
		if got := Decide(c.reconsume, c.max, c.requested, c.levels); got != c.want {
			t.Errorf("Decide(%d, %d, %d, %d) = %+v, want %+v", c.reconsume, c.max, c.requested, c.levels, got, c.want)
		}
	}
}

func record(t *testing.T, topic string, props map[string]string) protocol.Record {
	t.Helper()
	m := commitlog.Message{Topic: topic, Body: []byte("body"), Properties: protocol.EncodeProperties(props),
		StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"), ReconsumeTimes: 16}
	return protocol.Record{Topic: []byte(m.Topic), Body: m.Body, Properties: m.Properties, ReconsumeTimes: m.ReconsumeTimes, StoreHost: m.StoreHost}
}

func TestDescribeAndResend(t *testing.T) {
	rec := record(t, "%DLQ%cg", map[string]string{"RETRY_TOPIC": "orders", "UNIQ_KEY": "U1", "TAGS": "T", "KEYS": "k",
		"ORIGIN_MESSAGE_ID": "O1", "DELAY": "5", "REAL_TOPIC": "%RETRY%cg", "REAL_QID": "0"})
	d := Describe(rec, 7)
	if d.Topic != "orders" || d.MsgID != "U1" || d.OriginMsgID != "O1" || d.QueueOffset != 7 || d.ReconsumeTimes != 16 {
		t.Fatalf("describe: %+v", d)
	}
	m := ResendMessage(rec, "cg", ToOriginalTopic, 3)
	p := protocol.ParseProperties(m.Properties)
	if m.Topic != "orders" || m.QueueID != 3 || m.ReconsumeTimes != 0 || p["UNIQ_KEY"] != "U1" {
		t.Fatalf("resend to topic: %+v %v", m, p)
	}
	for _, k := range []string{"DELAY", "REAL_TOPIC", "REAL_QID", "RETRY_TOPIC"} {
		if _, ok := p[k]; ok {
			t.Errorf("resent message keeps %s", k)
		}
	}
	m = ResendMessage(rec, "cg", ToRetry, 3)
	p = protocol.ParseProperties(m.Properties)
	if m.Topic != "%RETRY%cg" || m.QueueID != 0 || p["RETRY_TOPIC"] != "orders" || m.ReconsumeTimes != 0 {
		t.Fatalf("resend to retry: %+v %v", m, p)
	}
	if _, err := ParseTarget("elsewhere"); err == nil {
		t.Fatal("bad target accepted")
	}
}
