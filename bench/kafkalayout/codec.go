package kafkalayout

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/netip"

	"github.com/ferrymq/ferry/commitlog"
)

// The record encoder. It produces exactly the bytes commitlog's appender
// produces for the same message and the same assigned fields (a test checks
// this against commitlog itself), so both layouts store identical records.
// It exists only because commitlog's encode and seal steps are unexported;
// once they are exported this file shrinks to two calls.

// Field positions of the stored record; see the table in commitlog's doc.
const (
	offQueueOffset   = 20
	offPhysical      = 28
	offSysFlag       = 36
	offBornTimestamp = 40
	offBornHost      = 48
	crcDigits        = 10
	minRecordSize    = 91 // IPv4 hosts, empty body, topic and properties
)

func isV6(a netip.AddrPort) bool {
	ad := a.Addr()
	return ad.IsValid() && !ad.Is4() && !ad.Is4In6()
}

func putHost(b []byte, a netip.AddrPort) int {
	ad := a.Addr().Unmap()
	if !ad.IsValid() {
		ad = netip.IPv4Unspecified()
	}
	n := copy(b, ad.AsSlice())
	binary.BigEndian.PutUint32(b[n:], uint32(a.Port()))
	return n + 4
}

// stripChecksum returns p without an earlier checksum property.
func stripChecksum(p []byte) []byte {
	key := []byte(commitlog.CRCProperty + "\x01")
	for i := 0; i < len(p); {
		end := bytes.IndexByte(p[i:], commitlog.PropertySep)
		if end < 0 {
			end = len(p)
		} else {
			end += i
		}
		if bytes.HasPrefix(p[i:end], key) {
			if end < len(p) {
				end++
			}
			out := make([]byte, 0, len(p)-(end-i))
			return append(append(out, p[:i]...), p[end:]...)
		}
		i = end + 1
	}
	return p
}

// appendRecord encodes m at the end of dst, leaving the fields assigned at
// append time zero for sealRecord. size must come from m.EncodedSize.
func appendRecord(dst []byte, m *commitlog.Message, size int) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	b := dst[start:]
	be := binary.BigEndian
	sys := m.SysFlag &^ (commitlog.SysFlagBornHostV6 | commitlog.SysFlagStoreHostV6)
	if isV6(m.BornHost) {
		sys |= commitlog.SysFlagBornHostV6
	}
	if isV6(m.StoreHost) {
		sys |= commitlog.SysFlagStoreHostV6
	}
	be.PutUint32(b[0:], uint32(size))
	be.PutUint32(b[4:], commitlog.MessageMagic)
	be.PutUint32(b[8:], crc32.ChecksumIEEE(m.Body))
	be.PutUint32(b[12:], uint32(m.QueueID))
	be.PutUint32(b[16:], uint32(m.Flag))
	be.PutUint32(b[offSysFlag:], uint32(sys))
	be.PutUint64(b[offBornTimestamp:], uint64(m.BornTimestamp))
	p := offBornHost + putHost(b[offBornHost:], m.BornHost)
	p += 8 // store timestamp, sealed later
	p += putHost(b[p:], m.StoreHost)
	be.PutUint32(b[p:], uint32(m.ReconsumeTimes))
	be.PutUint64(b[p+4:], uint64(m.PreparedTransactionOffset))
	be.PutUint32(b[p+12:], uint32(len(m.Body)))
	p += 16
	p += copy(b[p:], m.Body)
	b[p] = byte(len(m.Topic))
	p++
	p += copy(b[p:], m.Topic)
	be.PutUint16(b[p:], uint16(size-p-2))
	p += 2
	props := stripChecksum(m.Properties)
	p += copy(b[p:], props)
	if len(props) > 0 && props[len(props)-1] != commitlog.PropertySep {
		b[p] = commitlog.PropertySep
		p++
	}
	p += copy(b[p:], commitlog.CRCProperty)
	b[p] = commitlog.PropertyNameSep
	b[size-1] = commitlog.PropertySep
	return dst
}

// sealRecord fills in the queue offset, the physical offset, the store time
// and the record checksum.
func sealRecord(rec []byte, queueOffset, physical, storeTs int64) {
	be := binary.BigEndian
	be.PutUint64(rec[offQueueOffset:], uint64(queueOffset))
	be.PutUint64(rec[offPhysical:], uint64(physical))
	ts := offBornHost + 8
	if int32(be.Uint32(rec[offSysFlag:]))&commitlog.SysFlagBornHostV6 != 0 {
		ts = offBornHost + 20
	}
	be.PutUint64(rec[ts:], uint64(storeTs))
	n := len(rec) - 1 - crcDigits
	v := crc32.ChecksumIEEE(rec[:n])
	for i := n + crcDigits - 1; i >= n; i-- {
		rec[i] = byte('0' + v%10)
		v /= 10
	}
}
