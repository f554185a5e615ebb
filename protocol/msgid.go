package protocol

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// OffsetMsgID is RocketMQ's broker-generated message id: upper-case hex of
// store IP (4 or 16 bytes), int32 port and int64 commitlog offset.
func OffsetMsgID(storeHost netip.AddrPort, offset int64) string {
	var b [28]byte
	n := PutHost(b[:], storeHost)
	binary.BigEndian.PutUint64(b[n:], uint64(offset))
	return strings.ToUpper(hex.EncodeToString(b[:n+8]))
}

// ParseOffsetMsgID decodes an id made by OffsetMsgID.
func ParseOffsetMsgID(id string) (netip.AddrPort, int64, error) {
	if len(id) != 32 && len(id) != 56 {
		return netip.AddrPort{}, 0, fmt.Errorf("protocol: message id %q is not an offset id (32 or 56 hex digits)", id)
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("protocol: message id %q: %w", id, err)
	}
	host, n, err := readHost(b, len(b) == 28)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	return host, int64(binary.BigEndian.Uint64(b[n:])), nil
}

// UniqIDLen is the length of a UNIQ_KEY id in hex digits.
const UniqIDLen = 32

// NewUniqID returns a new UNIQ_KEY message id (see the package doc for
// the layout). It is safe for concurrent use; the first call reads the
// network interfaces once.
func NewUniqID() string { return uniqIDAt(time.Now()) }

var uniqCounter atomic.Uint32

func uniqIDAt(now time.Time) string {
	var b [16]byte
	copy(b[:10], uniqPrefix())
	binary.BigEndian.PutUint32(b[10:], monthMillis(now))
	binary.BigEndian.PutUint16(b[14:], uint16(uniqCounter.Add(1)))
	var out [UniqIDLen]byte
	hex.Encode(out[:], b[:])
	return strings.ToUpper(string(out[:]))
}

// uniqPrefix is the 10 bytes fixed per process: IPv4 address, pid and
// 4 random bytes (where Java puts its class loader's hash code).
var uniqPrefix = sync.OnceValue(func() []byte {
	b := make([]byte, 10)
	ip := LocalIPv4().As4()
	copy(b, ip[:])
	binary.BigEndian.PutUint16(b[4:], uint16(os.Getpid()))
	_, _ = rand.Read(b[6:])
	return b
})

// month caches the bounds of the current local month in Unix ms.
type month struct{ start, next int64 }

var curMonth atomic.Pointer[month]

func monthOf(t time.Time) *month {
	t = t.Local()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.Local)
	return &month{start: start.UnixMilli(), next: start.AddDate(0, 1, 0).UnixMilli()}
}

// monthMillis is the time field of a UNIQ_KEY: ms since the start of the
// month of now, local time. A month has at most 2 678 400 000 ms (31 days,
// a little more across a daylight-saving change), so it fits the field's
// 32 bits unsigned at any uptime; the month is found again when it ends.
func monthMillis(now time.Time) uint32 {
	ms := now.UnixMilli()
	m := curMonth.Load()
	if m == nil || ms < m.start || ms >= m.next {
		m = monthOf(now)
		curMonth.Store(m)
	}
	return uint32(ms - m.start)
}

// UniqID is a decoded UNIQ_KEY.
type UniqID struct {
	Addr    netip.Addr // the producer's IPv4 address
	Pid     uint16     // the producer's process id (low 16 bits)
	Time    time.Time  // when it was made, to the ms, as RocketMQ reads it
	Counter uint16
}

// ParseUniqID decodes a UNIQ_KEY id. The time field only says how far into
// its month the id was made; like RocketMQ's MessageClientIDSetter it is
// read in the current month of now, or the month before if that would put
// it in the future.
func ParseUniqID(id string, now time.Time) (UniqID, error) {
	if len(id) != UniqIDLen {
		return UniqID{}, fmt.Errorf("protocol: message id %q is not a UNIQ_KEY (%d hex digits)", id, UniqIDLen)
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return UniqID{}, fmt.Errorf("protocol: message id %q: %w", id, err)
	}
	span := int64(binary.BigEndian.Uint32(b[10:]))
	m := monthOf(now)
	if m.start+span > now.UnixMilli() {
		m = monthOf(time.UnixMilli(m.start).AddDate(0, -1, 0))
	}
	return UniqID{
		Addr:    netip.AddrFrom4([4]byte(b[:4])),
		Pid:     binary.BigEndian.Uint16(b[4:]),
		Time:    time.UnixMilli(m.start + span),
		Counter: binary.BigEndian.Uint16(b[14:]),
	}, nil
}

// LocalIPv4 returns the first non-loopback IPv4 address of this machine,
// else 127.0.0.1. It reads the interface table once, on first use; nothing
// is dialed.
func LocalIPv4() netip.Addr { return localIPv4() }

var localIPv4 = sync.OnceValue(func() netip.Addr {
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
				if v4 := n.IP.To4(); v4 != nil {
					return netip.AddrFrom4([4]byte(v4))
				}
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
})
