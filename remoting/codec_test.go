package remoting

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// Captured request headers (PROTOCOL.md §12), with the elided common fields
// written out as the Go client sends them.
var capturedHeaders = []struct {
	name string
	json string
	code int16
	ext  map[string]string
}{
	{"route", `{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"TopicTest"}}`,
		105, map[string]string{"topic": "TopicTest"}},
	{"send", `{"code":10,"language":"GO","version":317,"opaque":2,"flag":0,"remark":"","extFields":{"topic":"TopicTest","queueId":"1","sysFlag":"0","bornTimestamp":"1795397092887","maxReconsumeTimes":"0","defaultTopic":"TBW102","batch":"false","flag":"0","reconsumeTimes":"0","unitMode":"false","defaultTopicQueueNums":"4","properties":"TAGS\u0001TagA\u0002KEYS\u0001k1 retryme\u0002UNIQ_KEY\u0001C0000202669B0000000071999aa00001\u0002","bname":"broker-a","producerGroup":"pg"}}`,
		10, map[string]string{"topic": "TopicTest", "queueId": "1", "sysFlag": "0", "bornTimestamp": "1795397092887",
			"maxReconsumeTimes": "0", "defaultTopic": "TBW102", "batch": "false", "flag": "0", "reconsumeTimes": "0",
			"unitMode": "false", "defaultTopicQueueNums": "4",
			"properties": "TAGS\x01TagA\x02KEYS\x01k1 retryme\x02UNIQ_KEY\x01C0000202669B0000000071999aa00001\x02",
			"bname":      "broker-a", "producerGroup": "pg"}},
	{"batch", `{"code":320,"language":"GO","version":317,"opaque":3,"flag":0,"remark":"","extFields":{"a":"pg","b":"TopicTest","c":"TBW102","d":"4","e":"1","f":"0","g":"1795397092888","h":"0","i":"","j":"0","k":"false","l":"0","m":"true","n":"broker-a"}}`,
		320, map[string]string{"a": "pg", "b": "TopicTest", "c": "TBW102", "d": "4", "e": "1", "f": "0", "g": "1795397092888",
			"h": "0", "i": "", "j": "0", "k": "false", "l": "0", "m": "true", "n": "broker-a"}},
	{"pull", `{"code":11,"language":"GO","version":317,"opaque":4,"flag":0,"remark":"","extFields":{"consumerGroup":"cg1","topic":"TopicTest","queueId":"0","queueOffset":"0","maxMsgNums":"32","sysFlag":"2","commitOffset":"0","suspendTimeoutMillis":"20000","subscription":"","subVersion":"0","expressionType":"TAG","bname":"broker-a"}}`,
		11, map[string]string{"consumerGroup": "cg1", "topic": "TopicTest", "queueId": "0", "queueOffset": "0", "maxMsgNums": "32",
			"sysFlag": "2", "commitOffset": "0", "suspendTimeoutMillis": "20000", "subscription": "", "subVersion": "0",
			"expressionType": "TAG", "bname": "broker-a"}},
	{"queryOffset", `{"code":14,"language":"GO","version":317,"opaque":5,"flag":0,"remark":"","extFields":{"consumerGroup":"cg1","topic":"TopicTest","queueId":"0","bname":"broker-a"}}`,
		14, map[string]string{"consumerGroup": "cg1", "topic": "TopicTest", "queueId": "0", "bname": "broker-a"}},
	{"updateOffset", `{"code":15,"language":"GO","version":317,"opaque":6,"flag":0,"remark":"","extFields":{"consumerGroup":"cg1","topic":"%RETRY%cg1","queueId":"0","commitOffset":"2","bname":"broker-a"}}`,
		15, map[string]string{"consumerGroup": "cg1", "topic": "%RETRY%cg1", "queueId": "0", "commitOffset": "2", "bname": "broker-a"}},
	{"maxOffset", `{"code":30,"language":"GO","version":317,"opaque":7,"flag":0,"remark":"","extFields":{"topic":"TopicTest","queueId":"3","bname":"broker-a"}}`,
		30, map[string]string{"topic": "TopicTest", "queueId": "3", "bname": "broker-a"}},
	{"sendBack", `{"code":36,"language":"GO","version":317,"opaque":8,"flag":0,"remark":"","extFields":{"group":"cg1","offset":"0","delayLevel":"0","originMsgId":"C0000202669B0000000071999aa00001","originTopic":"TopicTest","unitMode":"false","maxReconsumeTimes":"16","bname":"broker-a"}}`,
		36, map[string]string{"group": "cg1", "offset": "0", "delayLevel": "0", "originMsgId": "C0000202669B0000000071999aa00001",
			"originTopic": "TopicTest", "unitMode": "false", "maxReconsumeTimes": "16", "bname": "broker-a"}},
	{"consumerList", `{"code":38,"language":"GO","version":317,"opaque":9,"flag":0,"remark":"","extFields":{"consumerGroup":"cg1"}}`,
		38, map[string]string{"consumerGroup": "cg1"}},
	{"heartbeat", `{"code":34,"language":"GO","version":317,"opaque":10,"flag":0,"remark":"","extFields":{}}`,
		34, map[string]string{}},
}

func TestDecodeCapturedJSONHeaders(t *testing.T) {
	for i, tc := range capturedHeaders {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeJSONHeader([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if c.Code != tc.code || c.Language != LanguageGo || c.Version != 317 || c.Opaque != int32(i+1) ||
				c.Flag != 0 || c.Remark != "" || c.SerializeType != SerializeJSON {
				t.Fatalf("header fields: %+v", c)
			}
			if got := normalized(c).ExtFields; !reflect.DeepEqual(got, tc.ext) {
				t.Fatalf("extFields:\n got %q\nwant %q", got, tc.ext)
			}
			if want := wireDecoded(c.Code, c.Flag); (c.WireFields() != nil) != want || (c.ExtFields != nil) == want {
				t.Fatalf("code %d: wire fields %v, map %v", c.Code, c.WireFields(), c.ExtFields)
			}
			for k, v := range tc.ext {
				if got, ok := c.Lookup(k); !ok || got != v {
					t.Fatalf("Lookup(%q) = %q, %v; want %q", k, got, ok, v)
				}
			}
			// Re-encode and decode again: same command.
			again, err := DecodeJSONHeader(AppendJSONHeader(nil, c))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, c) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", again, c)
			}
		})
	}
}

func TestEncodeJSONHeaderGolden(t *testing.T) {
	// The route request re-encodes byte for byte (one extFields key, same
	// key order as the Go client).
	c, err := DecodeJSONHeader([]byte(capturedHeaders[0].json))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(AppendJSONHeader(nil, c)); got != capturedHeaders[0].json {
		t.Fatalf("got  %s\nwant %s", got, capturedHeaders[0].json)
	}

	resp := NewResponse(c, protocol.RespTopicNotExist, "No topic route info in name server for the topic: TopicTest")
	resp.Set("b", "2")
	resp.Set("a", "x\"y\\z\x01<&>é")
	want := `{"code":17,"language":"JAVA","version":409,"opaque":1,"flag":1,` +
		`"remark":"No topic route info in name server for the topic: TopicTest",` +
		`"extFields":{"a":"x\"y\\z\u0001<&>é","b":"2"}}`
	if got := string(AppendJSONHeader(nil, resp)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestEncodeFrameGolden(t *testing.T) {
	c := &Command{Code: 34, Language: LanguageGo, Version: 317, Opaque: 7, ExtFields: map[string]string{}, Body: []byte("hi")}
	frame, err := AppendFrame(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	hdr := `{"code":34,"language":"GO","version":317,"opaque":7,"flag":0,"remark":"","extFields":{}}`
	var want []byte
	want = binary.BigEndian.AppendUint32(want, uint32(4+len(hdr)+2))
	want = binary.BigEndian.AppendUint32(want, uint32(len(hdr)))
	want = append(want, hdr...)
	want = append(want, "hi"...)
	if !bytes.Equal(frame, want) {
		t.Fatalf("got  %x\nwant %x", frame, want)
	}
	got, n, err := DecodeFrame(frame, 0)
	if err != nil || n != len(frame) {
		t.Fatalf("decode: n=%d err=%v", n, err)
	}
	if string(got.Body) != "hi" || got.Code != 34 || got.Opaque != 7 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestBinaryHeaderGolden(t *testing.T) {
	c := &Command{
		Code: 105, Language: LanguageJava, Version: 409, Opaque: 0x01020304, Flag: 1,
		Remark: "ok", ExtFields: map[string]string{"topic": "T", "a": ""}, SerializeType: SerializeRocketMQ,
	}
	got, err := AppendBinaryHeader(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString(
		"0069" + // code 105
			"00" + // JAVA
			"0199" + // version 409
			"01020304" + // opaque
			"00000001" + // flag
			"00000002" + "6f6b" + // remark "ok"
			"00000013" + // extLen 19
			"0001" + "61" + "00000000" + // "a" -> ""
			"0005" + "746f706963" + "00000001" + "54") // "topic" -> "T"
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	back, err := DecodeBinaryHeader(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", back, c)
	}

	// As a frame: header word carries serialize type 1 in the top byte.
	frame, err := AppendFrame(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	if w := binary.BigEndian.Uint32(frame[4:]); w != 1<<24|uint32(len(want)) {
		t.Fatalf("header word %08x", w)
	}
	dec, _, err := DecodeFrame(frame, 0)
	if err != nil || dec.SerializeType != SerializeRocketMQ || dec.ExtFields["topic"] != "T" {
		t.Fatalf("decode frame: %+v %v", dec, err)
	}
	// A response to a binary request is binary.
	if r := NewResponse(dec, protocol.RespSuccess, ""); r.SerializeType != SerializeRocketMQ || r.Opaque != c.Opaque || !r.IsResponse() {
		t.Fatalf("response %+v", r)
	}
}

func TestJSONHeaderLenient(t *testing.T) {
	c, err := DecodeJSONHeader([]byte(` {"code":105,"language":"JAVA","version":409,"opaque":3,"flag":2,"remark":null,` +
		`"extFields":{"n":12,"b":true,"s":"x","z":null,"e":"a\u00e9\n"},"serializeTypeCurrentRPC":"JSON"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"n": "12", "b": "true", "s": "x", "e": "aé\n"}
	if !reflect.DeepEqual(c.ExtFields, want) || c.Language != LanguageJava || !c.IsOneway() || c.Remark != "" {
		t.Fatalf("%+v", c)
	}
	c, err = DecodeJSONHeader([]byte(`{"code":1,"language":"KLINGON"}`))
	if err != nil || c.Language != LanguageOther || c.ExtFields != nil {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	frame := func(word uint32, hdr string, total int32) []byte {
		var b []byte
		if total == 0 {
			total = int32(4 + len(hdr))
		}
		b = binary.BigEndian.AppendUint32(b, uint32(total))
		b = binary.BigEndian.AppendUint32(b, word)
		return append(b, hdr...)
	}
	okHdr := `{"code":1}`
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortFrame},
		{"length only", []byte{0, 0, 0, 10}, ErrShortFrame},
		{"length too small", []byte{0, 0, 0, 3, 0, 0, 0}, ErrMalformedFrame},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff}, ErrMalformedFrame},
		{"too large", []byte{0x01, 0x00, 0x00, 0x01}, ErrFrameTooLarge},
		{"header beyond frame", frame(uint32(len(okHdr)+1), okHdr, 0), ErrMalformedFrame},
		{"unknown serialize type", frame(2<<24|uint32(len(okHdr)), okHdr, 0), ErrUnknownSerializeType},
		{"json not object", frame(4, "null", 0), ErrMalformedHeader},
		{"json array", frame(2, "[]", 0), ErrMalformedHeader},
		{"json code string", frame(12, `{"code":"1"}`, 0), ErrMalformedHeader},
		{"json code overflow", frame(14, `{"code":40000}`, 0), ErrMalformedHeader},
		{"json version overflow", frame(17, `{"version":32768}`, 0), ErrMalformedHeader},
		{"json ext object value", frame(22, `{"extFields":{"a":{}}}`, 0), ErrMalformedHeader},
		{"json trailing", frame(11, `{"code":1}x`, 0), ErrMalformedHeader},
		{"binary short", frame(1<<24|3, "abc", 0), ErrMalformedHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeFrame(tc.in, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	// Binary header structural errors.
	base, _ := AppendBinaryHeader(nil, &Command{Code: 1, ExtFields: map[string]string{"k": "v"}})
	bad := func(mut func(b []byte) []byte) []byte { return mut(append([]byte(nil), base...)) }
	for name, in := range map[string][]byte{
		"negative remark": bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[13:], 0xffffffff); return b }),
		"remark too long": bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[13:], 100); return b }),
		"ext too long":    bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[17:], 100); return b }),
		"negative key":    bad(func(b []byte) []byte { binary.BigEndian.PutUint16(b[21:], 0x8000); return b }),
		"key too long":    bad(func(b []byte) []byte { binary.BigEndian.PutUint16(b[21:], 50); return b }),
		"value too long":  bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[24:], 50); return b }),
		"truncated entry": bad(func(b []byte) []byte { binary.BigEndian.PutUint32(b[17:], 1); return b[:22] }),
	} {
		if _, err := DecodeBinaryHeader(in); !errors.Is(err, ErrMalformedHeader) {
			t.Errorf("%s: got %v", name, err)
		}
	}

	if _, _, err := DecodeFrame(frame(uint32(len(okHdr)), okHdr, 0), 8); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("custom limit: %v", err)
	}
}

func TestReadFrame(t *testing.T) {
	c := NewRequest(protocol.ReqHeartBeat, nil, []byte("body"))
	f1, _ := AppendFrame(nil, c)
	stream := append(append([]byte(nil), f1...), f1[:5]...)
	r := bytes.NewReader(stream)
	p, err := ReadFrame(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodePayload(p); err != nil || string(got.Body) != "body" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ReadFrame(r, 0); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("truncated: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	c := NewRequest(protocol.ReqPullMessage, map[string]string{
		"queueId": "3", "offset": "9223372036854775807", "big": "3000000000", "neg": "-1",
		"t": "true", "f": "false", "x": "abc", "e": "",
	}, nil)
	if v, err := c.Int32("queueId"); err != nil || v != 3 {
		t.Fatal(v, err)
	}
	if v, err := c.Int64("offset"); err != nil || v != 1<<63-1 {
		t.Fatal(v, err)
	}
	if _, err := c.Int32("big"); !errors.Is(err, ErrBadField) {
		t.Fatal(err)
	}
	if v, err := c.Int32("neg"); err != nil || v != -1 {
		t.Fatal(v, err)
	}
	if _, err := c.Int64("missing"); !errors.Is(err, ErrMissingField) {
		t.Fatal(err)
	}
	if _, err := c.Int64("x"); !errors.Is(err, ErrBadField) {
		t.Fatal(err)
	}
	if v, err := c.Bool("t"); err != nil || !v {
		t.Fatal(v, err)
	}
	if v, err := c.Bool("f"); err != nil || v {
		t.Fatal(v, err)
	}
	if _, err := c.Bool("x"); !errors.Is(err, ErrBadField) {
		t.Fatal(err)
	}
	if v, err := c.Int64Or("e", 5); err != nil || v != 5 {
		t.Fatal(v, err)
	}
	if v, err := c.BoolOr("missing", true); err != nil || !v {
		t.Fatal(v, err)
	}
	if _, err := c.String("missing"); !errors.Is(err, ErrMissingField) {
		t.Fatal(err)
	}
	c.SetInt64("n", 42)
	c.SetBool("b", true)
	if c.ExtFields["n"] != "42" || c.ExtFields["b"] != "true" {
		t.Fatal(c.ExtFields)
	}
	resp := NewResponse(c, protocol.RespPullNotFound, "none")
	var re *ResponseError
	if !errors.As(resp.Err(), &re) || re.Code != protocol.RespPullNotFound {
		t.Fatal(resp.Err())
	}
	if NewResponse(c, protocol.RespSuccess, "").Err() != nil {
		t.Fatal("success is an error")
	}
	if protocol.RequestName(protocol.ReqGetRouteInfoByTopic) != "GET_ROUTEINFO_BY_TOPIC" || protocol.ResponseName(17) != "TOPIC_NOT_EXIST" || protocol.RequestName(9999) != "9999" {
		t.Fatal("names")
	}
	if protocol.PermString(protocol.PermRead|protocol.PermWrite) != "RW-" || !protocol.PermReadable(6) || protocol.PermWritable(4) {
		t.Fatal("perm")
	}
}

func TestJSONFastPathAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`{"code":10,"extFields":{"p":"TAGS\u0001A\u0002","q":"\"\\\/\b\f\n\r\t"}}`,
		`{"remark":"\ud83d\ude00 \ud800 \ud800\u0041 \udc00x \u00e9","extFields":{}}`,
		`{"code":-32768,"version":32767,"opaque":-2147483648,"flag":3,"language":"PYTHON","remark":null,"extFields":null}`,
		"\t{ \"code\" : 1 ,\n\"extFields\" : { \"k\" : \"v\" , \"k\" : \"w\" } }\r\n",
	}
	for _, h := range capturedHeaders {
		inputs = append(inputs, h.json)
	}
	for _, in := range inputs {
		fast, ok := decodeJSONHeaderFast([]byte(in), false)
		if !ok {
			t.Errorf("fast path declined %s", in)
			continue
		}
		slow, err := decodeJSONHeaderSlow([]byte(in))
		if err != nil {
			t.Fatalf("slow path: %v", err)
		}
		if !reflect.DeepEqual(normalized(fast), normalized(slow)) {
			t.Errorf("differ on %s:\n%+v\n%+v", in, fast, slow)
		}
	}
	// Shapes the fast path leaves to encoding/json.
	for _, in := range []string{`{"Code":1}`, `{"code":1.0}`, `{"code":01}`, `{"extFields":{"a":1}}`, "{\"remark\":\"\xff\"}", `{"x":{}}`} {
		if _, ok := decodeJSONHeaderFast([]byte(in), false); ok {
			t.Errorf("fast path accepted %s", in)
		}
	}
}
