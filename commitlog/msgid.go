package commitlog

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// OffsetMsgID is RocketMQ's broker-generated message id: upper-case hex of
// store IP (4 or 16 bytes), int32 port and int64 commitlog offset.
func OffsetMsgID(storeHost netip.AddrPort, offset int64) string {
	var b [28]byte
	n := putHost(b[:], storeHost)
	binary.BigEndian.PutUint64(b[n:], uint64(offset))
	return strings.ToUpper(hex.EncodeToString(b[:n+8]))
}

// ParseOffsetMsgID decodes an id made by OffsetMsgID.
func ParseOffsetMsgID(id string) (netip.AddrPort, int64, error) {
	if len(id) != 32 && len(id) != 56 {
		return netip.AddrPort{}, 0, fmt.Errorf("commitlog: message id %q is not an offset id (32 or 56 hex digits)", id)
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("commitlog: message id %q: %w", id, err)
	}
	host, n, err := readHost(b, len(b) == 28)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	return host, int64(binary.BigEndian.Uint64(b[n:])), nil
}
