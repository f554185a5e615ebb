package broker

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Sends a client pipelines arrive together and are appended together; a
// bad one among them fails alone.
func TestPipelinedSendsServedTogether(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	nc, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	// The second request's properties are over the record format's limit,
	// which only the append would notice; the third's header is malformed.
	bodies := []string{"a", "b", "c", "d", "e"}
	var buf []byte
	for i, body := range bodies {
		props, queue := "", "0"
		switch i {
		case 1:
			props = "big\x01" + strings.Repeat("p", 40<<10)
		case 2:
			queue = "zero"
		}
		req := remoting.NewRequest(protocol.ReqSendMessage, map[string]string{
			"producerGroup": "pg", "topic": "piped", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": queue, "sysFlag": "0", "bornTimestamp": "1", "flag": "0", "properties": props,
			"reconsumeTimes": "0", "unitMode": "false", "batch": "false",
		}, []byte(body))
		req.Opaque = int32(i + 1)
		if buf, err = remoting.AppendFrame(buf, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	codes := map[int32]int16{}
	for len(codes) < len(bodies) {
		p, err := remoting.ReadFrame(br, 0)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := remoting.DecodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		codes[resp.Opaque] = resp.Code
	}
	want := map[int32]int16{1: protocol.RespSuccess, 2: protocol.RespMessageIllegal, 3: protocol.RespMessageIllegal,
		4: protocol.RespSuccess, 5: protocol.RespSuccess}
	for op, code := range want {
		if codes[op] != code {
			t.Fatalf("answers %v, want %v", codes, want)
		}
	}
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("piped", 0) == 3 })
	_, recs := newClient(t, b).pull("g", "piped", 0, 0, 0)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Body))
	}
	if strings.Join(got, ",") != "a,d,e" {
		t.Fatalf("stored %q, want a,d,e in order", got)
	}
}

// SEND_MESSAGE_V2 carries the header under one-letter names (as the Java
// client sends it); a missing topic is a clear error.
func TestSendV2Header(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	c := newClient(t, b)
	v2 := func(ext map[string]string) *remoting.Command {
		return c.invoke(remoting.NewRequest(protocol.ReqSendMessageV2, ext, []byte("v2-body")))
	}
	mustOK(t, v2(map[string]string{"a": "pg", "b": "vtwo", "c": "TBW102", "d": "4", "e": "1", "f": "0",
		"g": "1", "h": "7", "i": string(protocol.EncodeProperties(map[string]string{"TAGS": "T1"})), "j": "0", "k": "false", "m": "false"}))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("vtwo", 1) == 1 })
	_, recs := c.pull("g", "vtwo", 1, 0, 0)
	if len(recs) != 1 || string(recs[0].Body) != "v2-body" || recs[0].Flag != 7 {
		t.Fatalf("stored %+v", recs)
	}
	if tags, _ := protocol.Property(recs[0].Properties, protocol.PropTags); tags != "T1" {
		t.Fatalf("tags %q", tags)
	}
	r := v2(map[string]string{"a": "pg", "e": "0"})
	if r.Code != protocol.RespMessageIllegal || !strings.Contains(r.Remark, "missing topic") {
		t.Fatalf("no topic: %d %s", r.Code, r.Remark)
	}
}

// Batch sends pipelined on one connection are served as one group; each
// is answered on its own, a bad or empty batch next to a good one fails
// alone, and every good batch is stored exactly once.
func TestPipelinedBatchSends(t *testing.T) {
	b := testBroker(t, t.TempDir(), nil)
	good := func(tag string) []byte {
		return EncodeBatch(nil, []int32{0, 0}, [][]byte{[]byte(tag + "1"), []byte(tag + "2")}, [][]byte{nil, nil})
	}
	truncated := good("x")[:30]
	cases := []struct {
		name   string
		bodies [][]byte
		want   []int16
	}{
		{"bad then good", [][]byte{truncated, good("a")}, []int16{protocol.RespMessageIllegal, protocol.RespSuccess}},
		{"good then bad", [][]byte{good("b"), truncated}, []int16{protocol.RespSuccess, protocol.RespMessageIllegal}},
		{"good then empty", [][]byte{good("c"), nil}, []int16{protocol.RespSuccess, protocol.RespMessageIllegal}},
		{"empty then good", [][]byte{nil, good("d")}, []int16{protocol.RespMessageIllegal, protocol.RespSuccess}},
		{"good, bad, good", [][]byte{good("e"), truncated, good("f")},
			[]int16{protocol.RespSuccess, protocol.RespMessageIllegal, protocol.RespSuccess}},
	}
	var stored []string
	for _, tc := range cases {
		nc, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		var buf []byte
		for i, body := range tc.bodies {
			req := remoting.NewRequest(protocol.ReqSendBatchMessage, map[string]string{
				"a": "pg", "b": "batched", "c": "TBW102", "d": "1", "e": "0", "f": "0", "g": "1", "h": "0",
				"j": "0", "k": "false", "m": "true",
			}, body)
			req.Opaque = int32(i + 1)
			if buf, err = remoting.AppendFrame(buf, req); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := nc.Write(buf); err != nil { // one write: read and grouped together
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		got := make([]int16, len(tc.bodies))
		for range tc.bodies {
			p, err := remoting.ReadFrame(br, 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			resp, err := remoting.DecodePayload(p)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Code != tc.want[resp.Opaque-1] {
				t.Fatalf("%s: request %d answered %d (%s) %q, want %d", tc.name, resp.Opaque, resp.Code,
					protocol.ResponseName(resp.Code), resp.Remark, tc.want[resp.Opaque-1])
			}
			if resp.Code == protocol.RespMessageIllegal && !strings.Contains(resp.Remark, "batch") {
				t.Fatalf("%s: remark %q does not say what is wrong", tc.name, resp.Remark)
			}
			got[resp.Opaque-1] = resp.Code
		}
		// No second answer (a panic answers every request again).
		_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if p, err := remoting.ReadFrame(br, 0); err == nil {
			resp, _ := remoting.DecodePayload(p)
			t.Fatalf("%s: extra answer %d %q", tc.name, resp.Code, resp.Remark)
		}
		nc.Close()
		for i, body := range tc.bodies {
			if got[i] == protocol.RespSuccess {
				tag := string(body[20:21])
				stored = append(stored, tag+"1", tag+"2")
			}
		}
	}
	n := int64(len(stored))
	waitFor(t, 5*time.Second, "dispatch", func() bool { return b.cq.MaxOffset("batched", 0) >= n })
	_, recs := newClient(t, b).pull("g", "batched", 0, 0, 0)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Body))
	}
	if strings.Join(got, ",") != strings.Join(stored, ",") {
		t.Fatalf("stored %q, want %q (each good batch once, in order)", got, stored)
	}
}
