package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"

	"github.com/ferrymq/ferry/protocol"
)

// Layout positions the encoder writes; the format is protocol's.
const (
	fixedHeaderIPv4  = protocol.RecordMinSize
	offSysFlag       = protocol.PosSysFlag
	offBornTimestamp = protocol.PosBornTimestamp
	offBornHost      = protocol.PosBornHost
)

// Errors about a message.
var (
	ErrTopicInvalid       = errors.New("commitlog: topic must be 1 to 127 bytes")
	ErrPropertiesTooLarge = errors.New("commitlog: properties too large")
	ErrMessageTooLarge    = errors.New("commitlog: message too large")
)

// Message is what a producer's send becomes before it is stored. Properties
// are in wire form ("k\x01v\x02..."); an earlier checksum property in them is
// dropped and a new one appended.
type Message struct {
	Topic                     string
	QueueID                   int32
	Flag                      int32
	SysFlag                   int32
	Body                      []byte
	Properties                []byte
	BornTimestamp             int64
	BornHost                  netip.AddrPort
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
}

// AppendResult says where a message was stored.
type AppendResult struct {
	Offset         int64 // global offset of the record (PHYSICALOFFSET)
	Size           int32 // record size in bytes
	QueueOffset    int64 // logical offset in (topic, queue)
	StoreTimestamp int64 // ms
}

// End is the offset just past the record.
func (r AppendResult) End() int64 { return r.Offset + int64(r.Size) }

// EncodedSize is the size of m's record, or an error saying which limit it
// breaks. maxBody <= 0 means no body limit.
func (m *Message) EncodedSize(maxBody int) (int, error) {
	if len(m.Topic) == 0 || len(m.Topic) > protocol.MaxTopicLen {
		return 0, fmt.Errorf("%w (got %d)", ErrTopicInvalid, len(m.Topic))
	}
	if maxBody > 0 && len(m.Body) > maxBody {
		return 0, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrMessageTooLarge, len(m.Body), maxBody)
	}
	props, needSep := protocol.StripCRCProperty(m.Properties)
	pl := len(props) + protocol.CRCPropertySize
	if needSep {
		pl++
	}
	if pl > protocol.MaxPropertiesLen {
		return 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrPropertiesTooLarge, pl-protocol.CRCPropertySize, protocol.MaxPropertiesLen-protocol.CRCPropertySize-1)
	}
	return fixedHeaderIPv4 - 16 + protocol.HostLen(m.BornHost) + protocol.HostLen(m.StoreHost) + len(m.Body) + len(m.Topic) + pl, nil
}

// AppendRecord encodes m at the end of dst. Queue offset, physical offset,
// store timestamp and the checksum are left zero: protocol.SealRecord fills them in
// once the appender has assigned them. size must come from EncodedSize.
// (Exported for the layout benchmark's baseline, which stores the same
// records.)
func AppendRecord(dst []byte, m *Message, size int) []byte { return appendRecord(dst, m, size) }

func appendRecord(dst []byte, m *Message, size int) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	b := dst[start:]
	be := binary.BigEndian
	sys := m.SysFlag &^ (protocol.SysFlagBornHostV6 | protocol.SysFlagStoreHostV6)
	if protocol.HostLen(m.BornHost) == 20 {
		sys |= protocol.SysFlagBornHostV6
	}
	if protocol.HostLen(m.StoreHost) == 20 {
		sys |= protocol.SysFlagStoreHostV6
	}
	be.PutUint32(b[0:], uint32(size))
	be.PutUint32(b[4:], protocol.MessageMagic)
	be.PutUint32(b[8:], crc32.ChecksumIEEE(m.Body))
	be.PutUint32(b[12:], uint32(m.QueueID))
	be.PutUint32(b[16:], uint32(m.Flag))
	be.PutUint32(b[offSysFlag:], uint32(sys))
	be.PutUint64(b[offBornTimestamp:], uint64(m.BornTimestamp))
	p := offBornHost
	p += protocol.PutHost(b[p:], m.BornHost)
	p += 8 // store timestamp, sealed later
	p += protocol.PutHost(b[p:], m.StoreHost)
	be.PutUint32(b[p:], uint32(m.ReconsumeTimes))
	p += 4
	be.PutUint64(b[p:], uint64(m.PreparedTransactionOffset))
	p += 8
	be.PutUint32(b[p:], uint32(len(m.Body)))
	p += 4
	p += copy(b[p:], m.Body)
	b[p] = byte(len(m.Topic))
	p++
	p += copy(b[p:], m.Topic)
	props, needSep := protocol.StripCRCProperty(m.Properties)
	plen := size - p - 2
	be.PutUint16(b[p:], uint16(plen))
	p += 2
	p += copy(b[p:], props)
	if needSep {
		b[p] = protocol.PropertySep
		p++
	}
	p += copy(b[p:], protocol.CRCProperty)
	b[p] = protocol.PropertyNameSep
	b[size-1] = protocol.PropertySep
	return dst
}
