package protocol

import (
	"maps"
	"net/netip"
	"strings"
	"testing"
)

func TestPropertyHelpers(t *testing.T) {
	p := []byte("TAGS\x01A\x02noseparator\x02KEYS\x01k1 k2\x02EMPTY\x01\x02TAGS\x01B")
	for _, c := range []struct {
		key, want string
		ok        bool
	}{
		{"TAGS", "A", true}, {"KEYS", "k1 k2", true}, {"EMPTY", "", true},
		{"noseparator", "", false}, {"TAG", "", false}, {"MISSING", "", false},
	} {
		if got, ok := Property(p, c.key); got != c.want || ok != c.ok {
			t.Errorf("Property(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
		}
	}
	want := map[string]string{"TAGS": "B", "KEYS": "k1 k2", "EMPTY": ""}
	if got := ParseProperties(p); !maps.Equal(got, want) {
		t.Errorf("ParseProperties = %v", got)
	}
	enc := EncodeProperties(map[string]string{"b": "2", "a": "1"})
	if string(enc) != "a\x011\x02b\x012" {
		t.Errorf("EncodeProperties = %q", enc)
	}
	if ValidPropertyText("a\x01") || ValidPropertyText("\x02") || !ValidPropertyText("plain text") {
		t.Error("ValidPropertyText")
	}
}

func TestOffsetMsgIDGolden(t *testing.T) {
	host := netip.MustParseAddrPort("127.0.0.1:20911")
	if got, want := OffsetMsgID(host, 0xAE), "7F000001000051AF00000000000000AE"; got != want {
		t.Fatalf("OffsetMsgID = %s, want %s", got, want)
	}
	h, off, err := ParseOffsetMsgID("7F000001000051AF00000000000000AE")
	if err != nil || h != host || off != 0xAE {
		t.Fatalf("ParseOffsetMsgID = %v %d %v", h, off, err)
	}
	v6 := netip.MustParseAddrPort("[2001:db8::1]:10911")
	id := OffsetMsgID(v6, 1<<40)
	if len(id) != 56 || id != strings.ToUpper(id) {
		t.Fatalf("ipv6 id %q", id)
	}
	if h, off, err := ParseOffsetMsgID(id); err != nil || h != v6 || off != 1<<40 {
		t.Fatalf("ipv6 round trip: %v %d %v", h, off, err)
	}
	for _, bad := range []string{"", "7F000001000051AF00000000000000A", "ZZ000001000051AF00000000000000AE"} {
		if _, _, err := ParseOffsetMsgID(bad); err == nil {
			t.Errorf("ParseOffsetMsgID(%q) accepted", bad)
		}
	}
}
