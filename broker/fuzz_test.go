package broker

import (
	"bytes"
	"errors"
	"github.com/ferrymq/ferry/protocol"
	"net/netip"
	"strconv"
	"testing"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/remoting"
)

// FuzzDecodeBatch: never panics; on error the messages given are
// returned untouched, on success they are followed by what EncodeBatch
// would write back as the same body.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch(nil, []int32{0, 7}, [][]byte{[]byte("a"), []byte("bc")}, [][]byte{nil, []byte("k\x01v")}))
	f.Add(EncodeBatch(nil, []int32{0}, [][]byte{nil}, [][]byte{nil})[:21])
	f.Add([]byte{})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		h := &sendHeader{topic: "T", queueID: 1}
		earlier := []commitlog.Message{{Topic: "earlier"}}
		msgs, err := decodeBatch(body, earlier, h, netip.AddrPort{}, netip.AddrPort{})
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			if len(msgs) != 1 || msgs[0].Topic != "earlier" {
				t.Fatalf("on error got %d messages back, want the 1 given", len(msgs))
			}
			return
		}
		if len(msgs) < 2 || msgs[0].Topic != "earlier" {
			t.Fatalf("decoded %d messages after the given one", len(msgs)-1)
		}
		var flags []int32
		var bodies, props [][]byte
		for _, m := range msgs[1:] {
			if m.Topic != "T" || m.QueueID != 1 {
				t.Fatalf("message lost the header's topic/queue: %+v", m)
			}
			flags, bodies, props = append(flags, m.Flag), append(bodies, m.Body), append(props, m.Properties)
		}
		// The 8 bytes after the size (magic, CRC) are not kept.
		out := EncodeBatch(nil, flags, bodies, props)
		if len(out) != len(body) {
			t.Fatalf("re-encoded %d bytes from %d", len(out), len(body))
		}
		for p := 0; p < len(out); {
			n := int(out[p])<<24 | int(out[p+1])<<16 | int(out[p+2])<<8 | int(out[p+3])
			if !bytes.Equal(out[p:p+4], body[p:p+4]) || !bytes.Equal(out[p+12:p+n], body[p+12:p+n]) {
				t.Fatalf("message at byte %d re-encodes differently", p)
			}
			p += n
		}
	})
}

// FuzzParseSendHeader: never panics; an error is ErrInvalidRequest, and a
// header accepted has a topic and reads its numbers back as given.
func FuzzParseSendHeader(f *testing.F) {
	f.Add(true, "pg", "T", "4", "0", "0", "1700000000000", "0", "TAGS\x01a\x02", "0", "16", "false")
	f.Add(false, "pg", "T", "", "-1", "", "", "", "", "", "", "true")
	f.Add(false, "", "", "x", "2147483648", "1e3", "-9223372036854775809", " 1", "", "0x1", "", "")
	f.Fuzz(func(t *testing.T, v2 bool, group, topic, queueNums, queueID, sysFlag, born, flag, props, reconsume, maxReconsume, batch string) {
		ext := map[string]string{"producerGroup": group, "topic": topic, "defaultTopicQueueNums": queueNums,
			"queueId": queueID, "sysFlag": sysFlag, "bornTimestamp": born, "flag": flag, "properties": props,
			"reconsumeTimes": reconsume, "maxReconsumeTimes": maxReconsume, "batch": batch}
		code := int16(protocol.ReqSendMessage)
		if v2 {
			code = protocol.ReqSendMessageV2
			short := make(map[string]string, len(ext))
			for k, v := range ext {
				short[v2Key[k]] = v
			}
			ext = short
		}
		h, err := parseSendHeader(remoting.NewRequest(code, ext, nil))
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			return
		}
		if h.topic != topic || topic == "" {
			t.Fatalf("topic %q from %q", h.topic, topic)
		}
		if got, want := strconv.Itoa(int(h.queueID)), queueID; got != want {
			if n, err := strconv.ParseInt(want, 10, 32); err != nil || int64(h.queueID) != n {
				t.Fatalf("queueId %d from %q", h.queueID, want)
			}
		}
		if h.batch != (batch == "true") || h.properties != props {
			t.Fatalf("batch %v / properties %q from %q / %q", h.batch, h.properties, batch, props)
		}
	})
}
