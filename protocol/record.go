package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// The record format: RocketMQ's stored message layout (message version V1),
// which is also the body of a pull response. Part of the format: never
// change these.
const (
	MessageMagic    uint32 = 0xDAA320A7 // RocketMQ message version V1
	BlankMagic      uint32 = 0xCBD43194 // RocketMQ blank marker (-875286124)
	BlankMarkerSize        = 8          // TOTALSIZE + MAGICCODE of a blank marker

	SysFlagCompressed  int32 = 0x1
	SysFlagBornHostV6  int32 = 0x10
	SysFlagStoreHostV6 int32 = 0x20

	MaxTopicLen      = 127   // one signed byte of length
	MaxPropertiesLen = 32767 // one signed int16 of length, checksum included

	// CRCProperty is the name of the trailing checksum property.
	CRCProperty = "__CRC32#"
	crcDigits   = 10
	// CRCPropertySize is the size of "__CRC32#\x01dddddddddd\x02".
	CRCPropertySize = len(CRCProperty) + 1 + crcDigits + 1

	PropertyNameSep = 0x01
	PropertySep     = 0x02

	// RecordMinSize is the size of a record with IPv4 hosts, an empty
	// body, topic and properties: no valid record is smaller.
	RecordMinSize = 91

	// Byte positions of the fixed header fields.
	PosQueueOffset   = 20
	PosPhysical      = 28
	PosSysFlag       = 36
	PosBornTimestamp = 40
	PosBornHost      = 48
)

// ErrCorrupt marks a record that fails validation (errors.Is).
var ErrCorrupt = errors.New("protocol: corrupt record")

// ErrBlank is returned by Decode for a blank marker: the rest of the segment
// holds no data.
var ErrBlank = errors.New("protocol: blank marker")

// Record is a decoded view of a record. Its byte slices alias the buffer it
// was decoded from.
type Record struct {
	Size                      int32
	BodyCRC                   uint32
	QueueID                   int32
	Flag                      int32
	QueueOffset               int64
	PhysicalOffset            int64
	SysFlag                   int32
	BornTimestamp             int64
	BornHost                  netip.AddrPort
	StoreTimestamp            int64
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	Body                      []byte
	Topic                     []byte
	Properties                []byte // including the checksum property
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// HostLen is the size of a host field for a: 8 for IPv4 (or none), 20 for
// IPv6.
func HostLen(a netip.AddrPort) int {
	if a.Addr().Is4() || a.Addr().Is4In6() || !a.Addr().IsValid() {
		return 8
	}
	return 20
}

// PutHost writes a as a host field (address, then int32 port) at the start
// of b and returns its size. An invalid address is written as 0.0.0.0.
func PutHost(b []byte, a netip.AddrPort) int {
	ad := a.Addr().Unmap()
	if !ad.IsValid() {
		ad = netip.IPv4Unspecified()
	}
	var n int
	if ad.Is4() {
		ip := ad.As4()
		n = copy(b, ip[:])
	} else {
		ip := ad.As16()
		n = copy(b, ip[:])
	}
	binary.BigEndian.PutUint32(b[n:], uint32(a.Port()))
	return n + 4
}

func readHost(b []byte, v6 bool) (netip.AddrPort, int, error) {
	n := 4
	if v6 {
		n = 16
	}
	if len(b) < n+4 {
		return netip.AddrPort{}, 0, corrupt("short host")
	}
	ad, _ := netip.AddrFromSlice(b[:n])
	if v6 && ad.Is4In6() {
		return netip.AddrPort{}, 0, corrupt("IPv4-mapped address %v in a 16-byte host field", ad)
	}
	port := binary.BigEndian.Uint32(b[n:])
	if port > 0xFFFF {
		return netip.AddrPort{}, 0, corrupt("port %d", port)
	}
	return netip.AddrPortFrom(ad, uint16(port)), n + 4, nil
}

var crcItemPrefix = []byte(CRCProperty + "\x01")

// StripCRCProperty returns wire-form properties p without any checksum
// item, and whether a separator must be added before a new checksum item.
// It never modifies p.
func StripCRCProperty(p []byte) (props []byte, needSep bool) {
	if !bytes.Contains(p, crcItemPrefix) {
		// The common case, found in one pass: no item can be named
		// CRCProperty if its name and separator never occur.
		return p, len(p) > 0 && p[len(p)-1] != PropertySep
	}
	cut := false
	for {
		i := propertyIndex(p, CRCProperty)
		if i < 0 {
			break
		}
		// Cut the checksum item out; it is normally the last one, but an
		// input may carry more than one and a stored record must end up
		// with exactly one.
		end := i
		for end < len(p) && p[end] != PropertySep {
			end++
		}
		if end < len(p) {
			end++
		}
		if !cut {
			p = bytes.Clone(p) // never modify the caller's bytes
			cut = true
		}
		p = append(p[:i], p[end:]...)
	}
	return p, len(p) > 0 && p[len(p)-1] != PropertySep
}

// StoreTimestampPos is where STORETIMESTAMP sits in rec.
func StoreTimestampPos(rec []byte) int {
	sys := int32(binary.BigEndian.Uint32(rec[PosSysFlag:]))
	p := PosBornHost + 8
	if sys&SysFlagBornHostV6 != 0 {
		p = PosBornHost + 20
	}
	return p
}

// SealRecord fills in the fields a store assigns at append time (queue
// offset, physical offset, store timestamp) and the record checksum.
func SealRecord(rec []byte, queueOffset, physical, storeTs int64) {
	be := binary.BigEndian
	be.PutUint64(rec[PosQueueOffset:], uint64(queueOffset))
	be.PutUint64(rec[PosPhysical:], uint64(physical))
	be.PutUint64(rec[StoreTimestampPos(rec):], uint64(storeTs))
	n := len(rec) - 1 - crcDigits
	putDecimal10(rec[n:n+crcDigits], crc32.ChecksumIEEE(rec[:n]))
}

func putDecimal10(b []byte, v uint32) {
	for i := crcDigits - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

func parseDecimal10(b []byte) (uint32, bool) {
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return uint32(v), v <= 0xFFFFFFFF
}

// Decode decodes the record at the start of b and checks its structure and
// both checksums. It does not copy: the view aliases b. A blank marker
// decodes with an error wrapping ErrBlank.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) < 8 {
		return r, corrupt("%d bytes, too short for a header", len(b))
	}
	be := binary.BigEndian
	size := int32(be.Uint32(b))
	magic := be.Uint32(b[4:])
	if magic == BlankMagic {
		return Record{Size: size}, ErrBlank
	}
	if magic != MessageMagic {
		return r, corrupt("bad magic %#x", magic)
	}
	if size < RecordMinSize || int(size) > len(b) {
		return r, corrupt("size %d, %d bytes available", size, len(b))
	}
	rec := b[:size]
	r.Size = size
	r.BodyCRC = be.Uint32(rec[8:])
	r.QueueID = int32(be.Uint32(rec[12:]))
	r.Flag = int32(be.Uint32(rec[16:]))
	r.QueueOffset = int64(be.Uint64(rec[PosQueueOffset:]))
	r.PhysicalOffset = int64(be.Uint64(rec[PosPhysical:]))
	r.SysFlag = int32(be.Uint32(rec[PosSysFlag:]))
	r.BornTimestamp = int64(be.Uint64(rec[PosBornTimestamp:]))
	p := PosBornHost
	var n int
	var err error
	if r.BornHost, n, err = readHost(rec[p:], r.SysFlag&SysFlagBornHostV6 != 0); err != nil {
		return r, err
	}
	p += n
	// The rest needs at least: store ts 8, store host 8, reconsume 4, tx 8, bodylen 4.
	if len(rec) < p+8 {
		return r, corrupt("short record")
	}
	r.StoreTimestamp = int64(be.Uint64(rec[p:]))
	p += 8
	if r.StoreHost, n, err = readHost(rec[p:], r.SysFlag&SysFlagStoreHostV6 != 0); err != nil {
		return r, err
	}
	p += n
	if len(rec) < p+16 {
		return r, corrupt("short record")
	}
	r.ReconsumeTimes = int32(be.Uint32(rec[p:]))
	p += 4
	r.PreparedTransactionOffset = int64(be.Uint64(rec[p:]))
	p += 8
	bodyLen := int(int32(be.Uint32(rec[p:])))
	p += 4
	if bodyLen < 0 || p+bodyLen+1 > len(rec) {
		return r, corrupt("body length %d overruns the record", bodyLen)
	}
	r.Body = rec[p : p+bodyLen]
	p += bodyLen
	topicLen := int(int8(rec[p]))
	p++
	if topicLen <= 0 || p+topicLen+2 > len(rec) {
		return r, corrupt("topic length %d", topicLen)
	}
	r.Topic = rec[p : p+topicLen]
	p += topicLen
	propLen := int(int16(be.Uint16(rec[p:])))
	p += 2
	if propLen < CRCPropertySize || p+propLen != len(rec) {
		return r, corrupt("properties length %d does not end the record (%d bytes left)", propLen, len(rec)-p)
	}
	r.Properties = rec[p:]
	if crc32.ChecksumIEEE(r.Body) != r.BodyCRC {
		return r, corrupt("body checksum mismatch")
	}
	tail := rec[len(rec)-CRCPropertySize:]
	if string(tail[:len(CRCProperty)]) != CRCProperty || tail[len(CRCProperty)] != PropertyNameSep || tail[CRCPropertySize-1] != PropertySep {
		return r, corrupt("no checksum property")
	}
	want, ok := parseDecimal10(tail[len(CRCProperty)+1 : CRCPropertySize-1])
	if !ok || crc32.ChecksumIEEE(rec[:len(rec)-1-crcDigits]) != want {
		return r, corrupt("record checksum mismatch")
	}
	// The encoder writes exactly one checksum item, as an item of its own.
	user := r.Properties[:len(r.Properties)-CRCPropertySize]
	if len(user) > 0 && user[len(user)-1] != PropertySep {
		return r, corrupt("checksum property is not an item of its own")
	}
	if propertyIndex(user, CRCProperty) >= 0 {
		return r, corrupt("more than one checksum property")
	}
	return r, nil
}

// RecordSize reads TOTALSIZE at the start of b.
func RecordSize(b []byte) int32 { return int32(binary.BigEndian.Uint32(b)) }

// QueueOffsetOf and PhysicalOffsetOf read fixed header fields without a
// full decode.
func QueueOffsetOf(rec []byte) int64    { return int64(binary.BigEndian.Uint64(rec[PosQueueOffset:])) }
func PhysicalOffsetOf(rec []byte) int64 { return int64(binary.BigEndian.Uint64(rec[PosPhysical:])) }

// UserProperties returns the properties without the trailing checksum item.
func (r *Record) UserProperties() []byte {
	p, _ := StripCRCProperty(r.Properties)
	return p
}

// Property returns the value of key in the record's properties.
func (r *Record) Property(key string) (string, bool) { return Property(r.Properties, key) }
