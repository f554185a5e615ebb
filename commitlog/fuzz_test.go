package commitlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/netip"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// FuzzDecode: Decode never panics, and whatever it accepts is exactly what
// the encoder would write for the message it describes.
func FuzzDecode(f *testing.F) {
	golden, _ := hex.DecodeString(goldenRecord)
	f.Add(golden)
	f.Add(golden[:90])
	v6 := Message{Topic: "TopicTest", QueueID: 1, SysFlag: protocol.SysFlagCompressed, Body: []byte("body"),
		Properties: []byte("UNIQ_KEY\x01C0A8\x02TAGS\x01*\x02"),
		BornHost:   netip.MustParseAddrPort("[2001:db8::7]:50000"), StoreHost: netip.MustParseAddrPort("[::1]:10911")}
	f.Add(sealed(f, &v6, 1, 2, 3))
	empty := Message{Topic: "t"}
	f.Add(sealed(f, &empty, 0, 0, 0))
	var blank [protocol.BlankMarkerSize]byte
	putBlank(blank[:], 100)
	f.Add(blank[:])
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 91, 0xDA, 0xA3, 0x20, 0xA7})

	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		// Random bytes almost never carry valid checksums; fix them up so
		// the structural checks behind them are explored too.
		if fixed, ok := resealForFuzz(b); ok {
			checkDecode(t, fixed)
		}
	})
}

func checkDecode(t *testing.T, b []byte) {
	r, err := protocol.Decode(b)
	if err != nil {
		if !errors.Is(err, protocol.ErrCorrupt) && !errors.Is(err, protocol.ErrBlank) {
			t.Fatalf("error outside the corruption class: %v", err)
		}
		return
	}
	rec := b[:r.Size]
	m := recordMessage(&r)
	size, err := m.EncodedSize(0)
	if err != nil {
		t.Fatalf("decoded record does not re-encode: %v", err)
	}
	again := appendRecord(nil, m, size)
	protocol.SealRecord(again, r.QueueOffset, r.PhysicalOffset, r.StoreTimestamp)
	if !bytes.Equal(again, rec) {
		t.Fatalf("re-encoded record differs\n got %x\nwant %x", again, rec)
	}
}

// crcDigits is the number of decimal digits of the checksum property.
const crcDigits = protocol.CRCPropertySize - len(protocol.CRCProperty) - 2

// resealForFuzz returns a copy of b with BODYCRC and the trailing checksum
// digits recomputed, following the layout as far as b allows.
func resealForFuzz(b []byte) ([]byte, bool) {
	be := binary.BigEndian
	if len(b) < fixedHeaderIPv4 {
		return nil, false
	}
	size := int(int32(be.Uint32(b)))
	if size < fixedHeaderIPv4 || size > len(b) {
		return nil, false
	}
	rec := bytes.Clone(b[:size])
	sys := int32(be.Uint32(rec[offSysFlag:]))
	p := offBornHost + 8
	if sys&protocol.SysFlagBornHostV6 != 0 {
		p += 12
	}
	p += 8 + 8
	if sys&protocol.SysFlagStoreHostV6 != 0 {
		p += 12
	}
	p += 4 + 8
	if p+4 > size {
		return nil, false
	}
	bodyLen := int(int32(be.Uint32(rec[p:])))
	p += 4
	if bodyLen < 0 || p+bodyLen > size {
		return nil, false
	}
	be.PutUint32(rec[8:], crc32.ChecksumIEEE(rec[p:p+bodyLen]))
	n := size - 1 - crcDigits
	copy(rec[n:n+crcDigits], fmt.Sprintf("%010d", crc32.ChecksumIEEE(rec[:n])))
	return rec, true
}

// FuzzProperties: the property helpers never panic, and properties that fit
// survive a store: the record decodes and holds the same properties.
func FuzzProperties(f *testing.F) {
	for _, s := range []string{
		"", "TAGS\x01A", "TAGS\x01A\x02", "\x01\x02\x01", "a\x01b\x01c\x02", "__CRC32#\x010123456789\x02",
		"k\x01v\x02__CRC32#\x01x\x02k2\x01v2", "\x02\x02\x02", "__CRC32#", "x__CRC32#\x011\x02",
	} {
		f.Add([]byte(s), "TAGS")
		f.Add([]byte(s), protocol.CRCProperty)
	}
	f.Fuzz(func(t *testing.T, p []byte, key string) {
		in := bytes.Clone(p)
		v, ok := protocol.Property(p, key)
		parsed := protocol.ParseProperties(p)
		if ok && key != protocol.CRCProperty && protocol.ValidPropertyText(key) && key != "" {
			// Property returns the first item, ParseProperties keeps the
			// last; both must agree the key is there.
			if _, there := parsed[key]; !there {
				t.Fatalf("Property found %q=%q, ParseProperties did not", key, v)
			}
		}
		m := Message{Topic: "t", Properties: p}
		size, err := m.EncodedSize(0)
		if !bytes.Equal(p, in) {
			t.Fatal("EncodedSize modified the properties")
		}
		if err != nil {
			if !errors.Is(err, ErrPropertiesTooLarge) {
				t.Fatal(err)
			}
			return
		}
		rec := appendRecord(nil, &m, size)
		protocol.SealRecord(rec, 1, 2, 3)
		if !bytes.Equal(p, in) {
			t.Fatal("appendRecord modified the properties")
		}
		r, err := protocol.Decode(rec)
		if err != nil {
			t.Fatalf("stored properties %q: %v", p, err)
		}
		if got := protocol.ParseProperties(r.Properties); !maps.Equal(got, parsed) {
			t.Fatalf("stored properties parse to %v, input to %v", got, parsed)
		}
		if _, ok := protocol.Property(r.UserProperties(), protocol.CRCProperty); ok {
			t.Fatalf("user properties %q still hold a checksum item", r.UserProperties())
		}
	})
}

// FuzzCheckpoint: decodeCheckpoint never panics (on raw input, and on input
// whose checksum has been fixed up so the body parser is reached), and what
// it accepts re-encodes to an equal checkpoint.
func FuzzCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(checkpoint{offset: 4096, lastStoreTs: 17, queues: map[queueKey]int64{{"A", 0}: 3, {"B", 7}: 9}}))
	f.Add(encodeCheckpoint(checkpoint{queues: map[queueKey]int64{}}))
	f.Add([]byte("FERRYCKP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b []byte) {
			c, err := decodeCheckpoint(b)
			if err != nil {
				if !errors.Is(err, errBadCheckpoint) {
					t.Fatalf("error outside errBadCheckpoint: %v", err)
				}
				return
			}
			c2, err := decodeCheckpoint(encodeCheckpoint(c))
			if err != nil || c2.offset != c.offset || c2.lastStoreTs != c.lastStoreTs || !maps.Equal(c2.queues, c.queues) {
				t.Fatalf("re-encoded checkpoint: %+v, %v; want %+v", c2, err, c)
			}
		}
		check(b)
		if len(b) >= 4 {
			fixed := bytes.Clone(b)
			binary.BigEndian.PutUint32(fixed[len(fixed)-4:], crc32.ChecksumIEEE(fixed[:len(fixed)-4]))
			check(fixed)
		}
	})
}
