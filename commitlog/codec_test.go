package commitlog

import (
	"bytes"
	"encoding/hex"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// sealed encodes m and seals it as the appender would.
func sealed(t testing.TB, m *Message, queueOffset, physical, storeTs int64) []byte {
	t.Helper()
	size, err := m.EncodedSize(0)
	if err != nil {
		t.Fatal(err)
	}
	b := appendRecord(nil, m, size)
	if len(b) != size {
		t.Fatalf("appendRecord wrote %d bytes, EncodedSize said %d", len(b), size)
	}
	protocol.SealRecord(b, queueOffset, physical, storeTs)
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	v4 := netip.MustParseAddrPort("10.1.2.3:1234")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:10911")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.9]:80")
	unmapped := netip.MustParseAddrPort("192.0.2.9:80")
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB

	cases := []struct {
		name      string
		m         Message
		wantProps string // stored properties before the checksum item
		wantSys   int32
		wantBorn  netip.AddrPort
		wantStore netip.AddrPort
		hostBytes int // born + store host fields
	}{
		{name: "ipv4", m: Message{Topic: "T", Body: []byte("b"), Properties: []byte("TAGS\x01A\x02"), BornHost: v4, StoreHost: v4},
			wantProps: "TAGS\x01A\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "born ipv6", m: Message{Topic: "T", Body: []byte("b"), BornHost: v6, StoreHost: v4},
			wantSys: protocol.SysFlagBornHostV6, wantBorn: v6, wantStore: v4, hostBytes: 28},
		{name: "store ipv6", m: Message{Topic: "T", Body: []byte("b"), BornHost: v4, StoreHost: v6},
			wantSys: protocol.SysFlagStoreHostV6, wantBorn: v4, wantStore: v6, hostBytes: 28},
		{name: "both ipv6, other sysflag bits kept", m: Message{Topic: "T", SysFlag: protocol.SysFlagCompressed | 0x4, BornHost: v6, StoreHost: v6},
			wantSys: protocol.SysFlagCompressed | 0x4 | protocol.SysFlagBornHostV6 | protocol.SysFlagStoreHostV6, wantBorn: v6, wantStore: v6, hostBytes: 40},
		{name: "stale v6 flags cleared for ipv4 hosts", m: Message{Topic: "T", SysFlag: protocol.SysFlagBornHostV6 | protocol.SysFlagStoreHostV6, BornHost: v4, StoreHost: v4},
			wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "ipv4-mapped stored as ipv4", m: Message{Topic: "T", BornHost: mapped, StoreHost: mapped},
			wantBorn: unmapped, wantStore: unmapped, hostBytes: 16},
		{name: "unset hosts stored as 0.0.0.0:0", m: Message{Topic: "T"},
			wantBorn: netip.AddrPortFrom(netip.IPv4Unspecified(), 0), wantStore: netip.AddrPortFrom(netip.IPv4Unspecified(), 0), hostBytes: 16},
		{name: "empty body", m: Message{Topic: "T", Body: nil, BornHost: v4, StoreHost: v4},
			wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "large body", m: Message{Topic: "T", Body: large, BornHost: v4, StoreHost: v4},
			wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "longest topic", m: Message{Topic: strings.Repeat("t", protocol.MaxTopicLen), BornHost: v4, StoreHost: v4},
			wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "properties without trailing separator (Java form)", m: Message{Topic: "T", Properties: []byte("KEYS\x01k\x02TAGS\x01A"), BornHost: v4, StoreHost: v4},
			wantProps: "KEYS\x01k\x02TAGS\x01A\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "properties with trailing separator (Go form)", m: Message{Topic: "T", Properties: []byte("KEYS\x01k\x02TAGS\x01A\x02"), BornHost: v4, StoreHost: v4},
			wantProps: "KEYS\x01k\x02TAGS\x01A\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "input already checksummed (a stored record re-sent)", m: Message{Topic: "T", Properties: []byte("TAGS\x01A\x02__CRC32#\x010123456789\x02"), BornHost: v4, StoreHost: v4},
			wantProps: "TAGS\x01A\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "checksum property in the middle, no trailing separator", m: Message{Topic: "T", Properties: []byte("a\x01b\x02__CRC32#\x0199\x02c\x01d"), BornHost: v4, StoreHost: v4},
			wantProps: "a\x01b\x02c\x01d\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "only a checksum property", m: Message{Topic: "T", Properties: []byte("__CRC32#\x010000000000"), BornHost: v4, StoreHost: v4},
			wantProps: "", wantBorn: v4, wantStore: v4, hostBytes: 16},
		{name: "two checksum properties", m: Message{Topic: "T", Properties: []byte("__CRC32#\x01x\x02TAGS\x01A\x02__CRC32#\x010123456789\x02"), BornHost: v4, StoreHost: v4},
			wantProps: "TAGS\x01A\x02", wantBorn: v4, wantStore: v4, hostBytes: 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.m
			m.QueueID, m.Flag, m.BornTimestamp, m.ReconsumeTimes, m.PreparedTransactionOffset = 7, -3, 1700000000000, 16, 1<<40
			in := bytes.Clone(m.Properties)
			rec := sealed(t, &m, 42, 1<<33, 1700000000999)
			if !bytes.Equal(m.Properties, in) {
				t.Fatal("encoding modified the caller's properties")
			}
			wantSize := 91 - 16 + c.hostBytes + len(m.Body) + len(m.Topic) + len(c.wantProps) + protocol.CRCPropertySize
			if len(rec) != wantSize {
				t.Fatalf("record is %d bytes, want %d", len(rec), wantSize)
			}
			r, err := protocol.Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			if int(r.Size) != len(rec) || protocol.RecordSize(rec) != r.Size {
				t.Errorf("size %d, record %d bytes", r.Size, len(rec))
			}
			if string(r.Topic) != m.Topic || r.QueueID != 7 || r.Flag != -3 || r.SysFlag != c.wantSys ||
				r.QueueOffset != 42 || r.PhysicalOffset != 1<<33 || r.BornTimestamp != 1700000000000 ||
				r.StoreTimestamp != 1700000000999 || r.ReconsumeTimes != 16 || r.PreparedTransactionOffset != 1<<40 {
				t.Errorf("fields: %+v", r)
			}
			if protocol.QueueOffsetOf(rec) != 42 || protocol.PhysicalOffsetOf(rec) != 1<<33 {
				t.Errorf("QueueOffsetOf/PhysicalOffsetOf = %d/%d", protocol.QueueOffsetOf(rec), protocol.PhysicalOffsetOf(rec))
			}
			if r.BornHost != c.wantBorn || r.StoreHost != c.wantStore {
				t.Errorf("hosts %v %v, want %v %v", r.BornHost, r.StoreHost, c.wantBorn, c.wantStore)
			}
			if !bytes.Equal(r.Body, m.Body) {
				t.Errorf("body differs (%d bytes, want %d)", len(r.Body), len(m.Body))
			}
			if got := string(r.UserProperties()); got != c.wantProps {
				t.Errorf("user properties %q, want %q", got, c.wantProps)
			}
			if got, want := string(r.Properties), c.wantProps+protocol.CRCProperty+"\x01"; !strings.HasPrefix(got, want) || len(got) != len(want)+crcDigits+1 || got[len(got)-1] != protocol.PropertySep {
				t.Errorf("stored properties %q", got)
			}
			if n := strings.Count(string(r.Properties), protocol.CRCProperty); n != 1 {
				t.Errorf("%d checksum properties in %q", n, r.Properties)
			}
			if v, ok := r.Property(protocol.CRCProperty); !ok || v != string(rec[len(rec)-1-crcDigits:len(rec)-1]) {
				t.Errorf("Property(%s) = %q, %v", protocol.CRCProperty, v, ok)
			}
			if got, want := protocol.ParseProperties(r.Properties), protocol.ParseProperties([]byte(c.wantProps)); !maps.Equal(got, want) {
				t.Errorf("ParseProperties = %v, want %v", got, want)
			}
			// Re-encoding what was decoded gives the same bytes.
			again := sealed(t, recordMessage(&r), r.QueueOffset, r.PhysicalOffset, r.StoreTimestamp)
			if !bytes.Equal(again, rec) {
				t.Errorf("re-encoded record differs:\n%x\n%x", again, rec)
			}
		})
	}
}

// recordMessage is the message that, appended, gives back r's bytes.
func recordMessage(r *protocol.Record) *Message {
	return &Message{
		Topic: string(r.Topic), QueueID: r.QueueID, Flag: r.Flag, SysFlag: r.SysFlag,
		Body: r.Body, Properties: r.Properties, BornTimestamp: r.BornTimestamp,
		BornHost: r.BornHost, StoreHost: r.StoreHost, ReconsumeTimes: r.ReconsumeTimes,
		PreparedTransactionOffset: r.PreparedTransactionOffset,
	}
}

// goldenMessage and goldenRecord: the expected bytes were worked out field by
// field from the format table in doc.go (and PROTOCOL.md §6.1), not copied
// from the encoder.
var goldenMessage = Message{
	Topic: "T", QueueID: 3, Flag: 0x11, Body: []byte("hi"),
	Properties:     []byte("TAGS\x01A"), // Java form: no trailing \x02
	BornTimestamp:  1700000000000,       // 0x18BCFE56800
	BornHost:       netip.MustParseAddrPort("10.0.0.1:4660"),
	StoreHost:      netip.MustParseAddrPort("127.0.0.1:20911"),
	ReconsumeTimes: 2,
}

const goldenRecord = "" +
	"00000079" + // TOTALSIZE 121 = 91 + body 2 + topic 1 + properties 27
	"DAA320A7" + // MAGICCODE
	"D8932AAC" + // BODYCRC = crc32("hi")
	"00000003" + // QUEUEID
	"00000011" + // FLAG
	"0000000000000005" + // QUEUEOFFSET (sealed)
	"00000000000000AE" + // PHYSICALOFFSET (sealed)
	"00000000" + // SYSFLAG: IPv4 hosts
	"0000018BCFE56800" + // BORNTIMESTAMP
	"0A000001" + "00001234" + // BORNHOST 10.0.0.1, port 4660
	"0000018BCFE5687B" + // STORETIMESTAMP 1700000000123 (sealed)
	"7F000001" + "000051AF" + // STOREHOST 127.0.0.1, port 20911
	"00000002" + // RECONSUMETIMES
	"0000000000000000" + // PREPARED_TRANSACTION_OFFSET
	"00000002" + "6869" + // BODYLEN, "hi"
	"01" + "54" + // TOPICLEN, "T"
	"001B" + // PROPLEN 27 = "TAGS\x01A" 6 + \x02 1 + "__CRC32#\x01" 9 + 10 digits + \x02 1
	"5441475301" + "41" + "02" + // TAGS \x01 A \x02
	"5F5F43524333322301" + // __CRC32# \x01
	"30303439323436333439" + // "0049246349": crc32 of bytes [0, 110)
	"02"

func TestGoldenRecord(t *testing.T) {
	want, err := hex.DecodeString(goldenRecord)
	if err != nil {
		t.Fatal(err)
	}
	m := goldenMessage
	if size, err := m.EncodedSize(0); err != nil || size != len(want) {
		t.Fatalf("EncodedSize = %d, %v; want %d", size, err, len(want))
	}
	got := sealed(t, &m, 5, 0xAE, 1700000000123)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded record\n got %X\nwant %X", got, want)
	}
	r, err := protocol.Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	wantRec := protocol.Record{
		Size: 121, BodyCRC: 0xD8932AAC, QueueID: 3, Flag: 0x11, QueueOffset: 5, PhysicalOffset: 0xAE,
		SysFlag: 0, BornTimestamp: 1700000000000, BornHost: goldenMessage.BornHost,
		StoreTimestamp: 1700000000123, StoreHost: goldenMessage.StoreHost, ReconsumeTimes: 2,
		PreparedTransactionOffset: 0,
	}
	cmp := r
	cmp.Body, cmp.Topic, cmp.Properties = nil, nil, nil
	if !reflect.DeepEqual(cmp, wantRec) {
		t.Errorf("decoded\n got %+v\nwant %+v", cmp, wantRec)
	}
	if string(r.Body) != "hi" || string(r.Topic) != "T" || string(r.Properties) != "TAGS\x01A\x02__CRC32#\x010049246349\x02" {
		t.Errorf("body %q topic %q properties %q", r.Body, r.Topic, r.Properties)
	}
	if v, _ := r.Property(protocol.PropTags); v != "A" {
		t.Errorf("TAGS = %q", v)
	}
	if protocol.OffsetMsgID(r.StoreHost, r.PhysicalOffset) != "7F000001000051AF00000000000000AE" {
		t.Errorf("msg id %s", protocol.OffsetMsgID(r.StoreHost, r.PhysicalOffset))
	}
	// Decode reads only the record at the start of its input.
	if r2, err := protocol.Decode(append(bytes.Clone(want), 0xFF, 0xFF, 0xFF)); err != nil || r2.Size != 121 {
		t.Errorf("Decode with trailing bytes: %v", err)
	}
}

// TestDecodeRejectsDamage flips every bit of the golden record and cuts it
// at every length: Decode must refuse all of them as corrupt.
func TestDecodeRejectsDamage(t *testing.T) {
	good, _ := hex.DecodeString(goldenRecord)
	b := bytes.Clone(good)
	for i := range b {
		for bit := range 8 {
			b[i] ^= 1 << bit
			if _, err := protocol.Decode(b); !errors.Is(err, protocol.ErrCorrupt) {
				t.Errorf("byte %d bit %d flipped: Decode = %v", i, bit, err)
			}
			b[i] ^= 1 << bit
		}
	}
	for n := range len(good) {
		if _, err := protocol.Decode(good[:n]); !errors.Is(err, protocol.ErrCorrupt) {
			t.Errorf("cut to %d bytes: Decode = %v", n, err)
		}
	}
	var blank [protocol.BlankMarkerSize]byte
	putBlank(blank[:], 4096)
	if r, err := protocol.Decode(blank[:]); !errors.Is(err, protocol.ErrBlank) || r.Size != 4096 {
		t.Errorf("blank marker: %+v %v", r, err)
	}
}

func TestEncodedSizeLimits(t *testing.T) {
	ok := strings.Repeat("p", protocol.MaxPropertiesLen-protocol.CRCPropertySize-1)
	m := Message{Topic: "t", Properties: []byte(ok)}
	if _, err := m.EncodedSize(0); err != nil {
		t.Fatalf("largest properties rejected: %v", err)
	}
	m.Properties = []byte(ok + "p")
	if _, err := m.EncodedSize(0); !errors.Is(err, ErrPropertiesTooLarge) {
		t.Fatalf("one byte more: %v", err)
	}
	// With a trailing separator no extra one is needed, so one more byte fits.
	m.Properties = []byte(ok + "\x02")
	if _, err := m.EncodedSize(0); err != nil {
		t.Fatalf("largest properties with a trailing separator rejected: %v", err)
	}
	m = Message{Topic: "t", Body: make([]byte, 10)}
	if _, err := m.EncodedSize(10); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EncodedSize(9); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("body over the limit: %v", err)
	}
}

func TestParseFlushMode(t *testing.T) {
	for s, want := range map[string]FlushMode{"async": FlushAsync, "ASYNC_FLUSH": FlushAsync, "sync": FlushSync, "SYNC_FLUSH": FlushSync} {
		if got, err := ParseFlushMode(s); err != nil || got != want || (got.String() != "sync") != (want == FlushAsync) {
			t.Errorf("ParseFlushMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseFlushMode("fast"); err == nil {
		t.Error("ParseFlushMode accepted nonsense")
	}
}

// TestDecodeRejectsUnencodable: records with valid checksums that the
// encoder can never write are corrupt (found by FuzzDecode: each of these
// decoded and re-encoded to different bytes).
func TestDecodeRejectsUnencodable(t *testing.T) {
	good, _ := hex.DecodeString(goldenRecord)
	storePort := 48 + 8 + 8 + 4 // STOREHOST port, IPv4 hosts
	v6 := Message{Topic: "T", BornHost: netip.MustParseAddrPort("[2001:db8::1]:1"), StoreHost: testStore}
	v6rec := sealed(t, &v6, 0, 0, 0)
	eightChars := Message{Topic: "T", Properties: []byte("ABCDEFGH\x01A\x02"), StoreHost: testStore}
	twoKeys := sealed(t, &eightChars, 0, 0, 0)
	for _, c := range []struct {
		name string
		rec  []byte
		edit func(b []byte) []byte
	}{
		{"port above 65535", good, func(b []byte) []byte { b[storePort+1] = 1; return b }},
		{"ipv4-mapped address in a 16-byte host", v6rec, func(b []byte) []byte {
			copy(b[48:64], netip.MustParseAddr("::ffff:1.2.3.4").AsSlice())
			return b
		}},
		{"checksum item glued to the previous item", good, func(b []byte) []byte {
			i := bytes.Index(b, []byte("A\x02__CRC32#"))
			b[i+1] = 'x' // "TAGS\x01Ax__CRC32#\x01..."
			return b
		}},
		{"two checksum items", twoKeys, func(b []byte) []byte {
			i := bytes.Index(b, []byte("ABCDEFGH\x01"))
			copy(b[i:], protocol.CRCProperty) // "__CRC32#\x01A\x02__CRC32#\x01...\x02"
			return b
		}},
	} {
		b, ok := resealForFuzz(c.edit(bytes.Clone(c.rec)))
		if !ok {
			t.Fatalf("%s: cannot reseal", c.name)
		}
		if _, err := protocol.Decode(b); !errors.Is(err, protocol.ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", c.name, err)
		}
	}
}
