package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Records made by the commitlog encoder: IPv4 hosts with properties, and
// IPv6 hosts.
var seedRecords = []string{
	"000000aedaa320a7f7d18982000000030000000000000000000000070000000000100000000000000000018bcfe568000a0000010000c3500000018bcfe5687b7f00000100002a9f0000000200000000000000000000000548656c6c6f09546f70696354657374004554414753014102554e49515f4b4559013041303030303031303030313030303030303030303030303030303030304142025f5f435243333223013232353530353230323902",
	"0000008adaa320a78cdc168300000000000000000000000000000007000000000010000000000030000000000000000020010db8000000000000000000000001000000010000018bcfe5687b20010db800000000000000000000000200002a9f000000000000000000000000000000017802543600145f5f435243333223013131303839323336323902",
}

func TestSeedRecordsDecode(t *testing.T) {
	for _, h := range seedRecords {
		b, _ := hex.DecodeString(h)
		r, err := Decode(b)
		if err != nil || int(r.Size) != len(b) || r.QueueOffset != 7 || r.PhysicalOffset != 1<<20 {
			t.Fatalf("seed record: %+v %v", r, err)
		}
	}
}

// FuzzDecode: the pulled-record decoder never panics, fails only with
// ErrCorrupt or ErrBlank, and what it accepts is consistent: the view lies
// inside the input, the fixed-field readers agree with it, and the record
// decodes the same on its own.
func FuzzDecode(f *testing.F) {
	for _, h := range seedRecords {
		b, _ := hex.DecodeString(h)
		f.Add(b)
		f.Add(append(b, b...)) // two records, as a pull body carries them
		f.Add(b[:len(b)-3])
	}
	f.Add([]byte{0, 0, 0x10, 0, 0xCB, 0xD4, 0x31, 0x94}) // a blank marker
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrBlank) {
				t.Fatalf("Decode error %v is neither ErrCorrupt nor ErrBlank", err)
			}
			return
		}
		if int(r.Size) > len(b) || r.Size < RecordMinSize {
			t.Fatalf("size %d of %d bytes", r.Size, len(b))
		}
		rec := b[:r.Size]
		if RecordSize(rec) != r.Size || QueueOffsetOf(rec) != r.QueueOffset || PhysicalOffsetOf(rec) != r.PhysicalOffset {
			t.Fatal("fixed-field readers disagree with Decode")
		}
		if int64(bytesAt(rec, StoreTimestampPos(rec))) != r.StoreTimestamp {
			t.Fatal("StoreTimestampPos disagrees with Decode")
		}
		again, err := Decode(bytes.Clone(rec))
		if err != nil || again.Size != r.Size || !bytes.Equal(again.Properties, r.Properties) || !bytes.Equal(again.Body, r.Body) {
			t.Fatalf("the record alone decodes differently: %v", err)
		}
		if _, ok := r.Property(CRCProperty); !ok {
			t.Fatal("accepted record has no checksum property")
		}
		if bytes.Contains(r.UserProperties(), crcItemPrefix) {
			t.Fatal("UserProperties kept the checksum item")
		}
	})
}

func bytesAt(b []byte, p int) uint64 {
	var v uint64
	for _, c := range b[p : p+8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// FuzzParseOffsetMsgID: never panics, and an accepted id is exactly what
// OffsetMsgID makes of what it decodes to.
func FuzzParseOffsetMsgID(f *testing.F) {
	f.Add("7F000001000051AF00000000000000AE")
	f.Add(OffsetMsgID(netip.MustParseAddrPort("[2001:db8::1]:10911"), 1<<40))
	f.Add("7f000001000051af00000000000000ae")
	f.Add(strings.Repeat("F", 32))
	f.Fuzz(func(t *testing.T, id string) {
		host, off, err := ParseOffsetMsgID(id)
		if err != nil {
			return
		}
		if got := OffsetMsgID(host, off); got != strings.ToUpper(id) {
			t.Fatalf("ParseOffsetMsgID(%q) = %v %d, which encodes as %q", id, host, off, got)
		}
	})
}

// FuzzParseUniqID: never panics; an accepted id gives back its address,
// pid and counter fields.
func FuzzParseUniqID(f *testing.F) {
	f.Add(uniqIDAt(time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)))
	f.Add("0A0000010001000000000000000000AB")
	f.Add(strings.Repeat("F", 32))
	f.Add("zz")
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.Local)
	f.Fuzz(func(t *testing.T, id string) {
		u, err := ParseUniqID(id, now)
		if err != nil {
			return
		}
		b, _ := hex.DecodeString(id)
		if u.Addr != netip.AddrFrom4([4]byte(b[:4])) || u.Pid != uint16(b[4])<<8|uint16(b[5]) || u.Counter != uint16(b[14])<<8|uint16(b[15]) {
			t.Fatalf("ParseUniqID(%q) = %+v", id, u)
		}
	})
}

// FuzzUniqIDTime: an id made at any time in the last four weeks reads back
// as that time, to the ms.
func FuzzUniqIDTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(27*24*3600*1000), int64(1))
	f.Add(int64(3600*1000), int64(400*24*3600*1000))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)
	f.Fuzz(func(t *testing.T, ago, at int64) {
		if ago < 0 {
			ago = -ago
		}
		if at < 0 {
			at = -at
		}
		now := base.Add(time.Duration(at%(3*365*24*3600*1000)) * time.Millisecond)
		made := now.Add(-time.Duration(ago%(28*24*3600*1000)) * time.Millisecond)
		u, err := ParseUniqID(uniqIDAt(made), now)
		if err != nil || !u.Time.Equal(made) {
			t.Fatalf("made %v, read at %v: %v %v", made, now, u.Time, err)
		}
	})
}

// FuzzDecodeAuthRequest: FERRY_AUTH's field decoder never panics, and what
// it accepts is exactly one well-formed step.
func FuzzDecodeAuthRequest(f *testing.F) {
	nonce := base64.StdEncoding.EncodeToString(make([]byte, AuthNonceLen))
	f.Add("1", AuthMechHMACSHA256, "user-key", nonce, "")
	f.Add("2", "", "", "", nonce)
	f.Add("1", "MD5", "", "AAAA", "")
	f.Add("2", "", "", "", nonce[:43]+"!")
	f.Add("x", "", "", "", "")
	f.Fuzz(func(t *testing.T, step, mech, key, clientNonce, proof string) {
		ext := map[string]string{AuthFieldStep: step, AuthFieldMech: mech, AuthFieldKey: key,
			AuthFieldClientNonce: clientNonce, AuthFieldProof: proof, AuthFieldServerNonce: clientNonce, AuthFieldServerProof: proof}
		hello, pr, err := DecodeAuthRequest(ext)
		switch {
		case err != nil:
			if hello != nil || pr != nil || !errors.Is(err, ErrAuthMalformed) {
				t.Fatalf("error %v with results %v %v", err, hello, pr)
			}
		case hello != nil:
			if pr != nil || step != "1" || mech != AuthMechHMACSHA256 || hello.AccessKey != key || key == "" || len(key) > AuthMaxKeyLen {
				t.Fatalf("accepted step 1 %+v from %q %q %q", hello, step, mech, key)
			}
			if b, err := base64.StdEncoding.DecodeString(hello.ClientNonce); err != nil || len(b) != AuthNonceLen {
				t.Fatalf("accepted client nonce %q", hello.ClientNonce)
			}
		case pr != nil:
			if step != "2" || len(pr.Proof) != AuthProofLen {
				t.Fatalf("accepted step 2 %x from %q", pr.Proof, step)
			}
		default:
			t.Fatal("no result and no error")
		}
		if sn, err := DecodeAuthServerNonce(ext); err == nil {
			if b, err := base64.StdEncoding.DecodeString(sn); err != nil || len(b) != AuthNonceLen {
				t.Fatalf("accepted server nonce %q", sn)
			}
		}
		if sp, err := DecodeAuthServerProof(ext); err == nil && len(sp) != AuthProofLen {
			t.Fatalf("accepted server proof %x", sp)
		}
	})
}
