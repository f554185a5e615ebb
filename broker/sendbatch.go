package broker

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ferrymq/ferry/commitlog"
)

// decodeBatch decodes a batch body (the concatenated inner messages of
// SEND_BATCH_MESSAGE) and appends its messages to msgs. On error msgs is
// returned as it was given: msgs may already hold the messages of other
// requests served in the same group.
func decodeBatch(body []byte, msgs []commitlog.Message, h *sendHeader, born, store netip.AddrPort) ([]commitlog.Message, error) {
	be := binary.BigEndian
	first := len(msgs)
	bad := func(format string, args ...any) ([]commitlog.Message, error) {
		clear(msgs[first:])
		return msgs[:first], fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
	}
	for p := 0; p < len(body); {
		if len(body)-p < 22 {
			return bad("batch body truncated at byte %d", p)
		}
		total := int(int32(be.Uint32(body[p:])))
		if total < 22 || total > len(body)-p {
			return bad("batch message at byte %d has size %d", p, total)
		}
		m := body[p : p+total]
		flag := int32(be.Uint32(m[12:]))
		bodyLen := int(int32(be.Uint32(m[16:])))
		if bodyLen < 0 || 20+bodyLen+2 > total {
			return bad("batch message at byte %d has body length %d", p, bodyLen)
		}
		propLen := int(int16(be.Uint16(m[20+bodyLen:])))
		if propLen < 0 || 22+bodyLen+propLen != total {
			return bad("batch message at byte %d has properties length %d", p, propLen)
		}
		msgs = append(msgs, commitlog.Message{
			Topic: h.topic, QueueID: h.queueID, Flag: flag, SysFlag: h.sysFlag, Body: m[20 : 20+bodyLen],
			Properties: m[22+bodyLen : total], BornTimestamp: h.bornTimestamp, BornHost: born,
			StoreHost: store, ReconsumeTimes: h.reconsumeTimes,
		})
		p += total
	}
	if len(msgs) == first {
		return bad("empty batch")
	}
	return msgs, nil
}

// EncodeBatch encodes messages as a SEND_BATCH_MESSAGE body (the client
// side of decodeBatch).
func EncodeBatch(dst []byte, flag []int32, bodies [][]byte, props [][]byte) []byte {
	be := binary.BigEndian
	for i := range bodies {
		total := 22 + len(bodies[i]) + len(props[i])
		dst = be.AppendUint32(dst, uint32(total))
		dst = be.AppendUint32(dst, 0)
		dst = be.AppendUint32(dst, 0)
		dst = be.AppendUint32(dst, uint32(flag[i]))
		dst = be.AppendUint32(dst, uint32(len(bodies[i])))
		dst = append(dst, bodies[i]...)
		dst = be.AppendUint16(dst, uint16(len(props[i])))
		dst = append(dst, props[i]...)
	}
	return dst
}

func parseAddrPort(s string) netip.AddrPort {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
