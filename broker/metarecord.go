package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
)

// Metadata records: every change to the broker's replicated metadata is a
// record of the system topic protocol.MetaTopic (queue 0) in the shared
// commitlog, and the metadata store holds what applying those records in
// log order gives (metalog.go). A replica that replays the same log ends
// with the same topics, groups, consumer offsets and delay progress.
//
// The record's body, big-endian (part of the format):
//
//	+-----+---------+------+------------------------------------------------+
//	| off | field   | size | content                                        |
//	+-----+---------+------+------------------------------------------------+
//	|   0 | magic   | 2    | 0xFE 0x4D                                      |
//	|   2 | version | 1    | 1                                              |
//	|   3 | flags   | 1    | bit 0: part of a snapshot; other bits 0        |
//	|   4 | count   | 4    | number of changes that follow (at least 1)     |
//	|   8 | changes | ...  | count × change                                 |
//	+-----+---------+------+------------------------------------------------+
//
// A change:
//
//	+-----+---------+------+------------------------------------------------+
//	|   0 | kind    | 1    | one of the kinds below                         |
//	|   1 | length  | 4    | payload length n                               |
//	|   5 | payload | n    | by kind                                        |
//	+-----+---------+------+------------------------------------------------+
//
// Kinds and payloads:
//
//	1 topic put       topic config, JSON (as stored under t/<topic>)
//	2 topic delete    topic name
//	3 group put       group config, JSON (as stored under g/<group>)
//	4 group delete    group name
//	5 offset set      group len u16, group, topic len u16, topic, queue i32, offset i64
//	6 offsets drop    by u8 (1: every offset of a group, 2: of a topic), name
//	7 delay progress  levels u16, levels × next schedule-queue offset i64,
//	                  timer cursor due ms i64, timer cursor offset i64
//	8 producer epoch  epoch i32, idempotent producer id (the rest)
//
// Every change sets or deletes state outright (no increments), so
// applying a record twice leaves what applying it once does. A snapshot
// is ordinary put/set changes of everything there is, flagged; applying
// it only adds and overwrites, so a snapshot cut short by a crash leaves
// state that is still correct. A decoder meeting an unknown version or
// kind refuses the record: it was written by a newer broker.
const (
	metaMagic0    = 0xFE
	metaMagic1    = 0x4D
	metaVersion   = 1
	metaFlagSnap  = 1
	metaHeaderLen = 8

	metaTopicPut      = 1
	metaTopicDelete   = 2
	metaGroupPut      = 3
	metaGroupDelete   = 4
	metaOffsetSet     = 5
	metaOffsetsDrop   = 6
	metaDelayProgres  = 7
	metaProducerEpoch = 8

	metaDropGroup = 1
	metaDropTopic = 2
)

// ErrMetaRecord marks a metadata record that cannot be decoded.
var ErrMetaRecord = errors.New("broker: malformed metadata record")

// metaChange is one decoded change; which fields count depends on Kind.
type metaChange struct {
	Kind   uint8
	Topic  TopicConfig    // metaTopicPut
	Group  GroupConfig    // metaGroupPut
	Name   string         // metaTopicDelete, metaGroupDelete, metaOffsetsDrop
	DropBy uint8          // metaOffsetsDrop
	Offset offsetID       // metaOffsetSet
	Value  int64          // metaOffsetSet
	Delay  delay.Progress // metaDelayProgres
	Epoch  int32          // metaProducerEpoch, with Name the producer id
}

// metaRecord is a decoded record body.
type metaRecord struct {
	Snapshot bool
	Changes  []metaChange
}

// encodeMetaRecord appends the body of a record holding changes to dst.
func encodeMetaRecord(dst []byte, snapshot bool, changes []metaChange) ([]byte, error) {
	if len(changes) == 0 {
		return dst, fmt.Errorf("%w: no changes", ErrMetaRecord)
	}
	flags := byte(0)
	if snapshot {
		flags = metaFlagSnap
	}
	dst = append(dst, metaMagic0, metaMagic1, metaVersion, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(changes)))
	for i := range changes {
		c := &changes[i]
		dst = append(dst, c.Kind, 0, 0, 0, 0)
		start := len(dst)
		switch c.Kind {
		case metaTopicPut:
			b, err := json.Marshal(c.Topic)
			if err != nil {
				return dst, err
			}
			dst = append(dst, b...)
		case metaGroupPut:
			b, err := json.Marshal(c.Group)
			if err != nil {
				return dst, err
			}
			dst = append(dst, b...)
		case metaTopicDelete, metaGroupDelete:
			dst = append(dst, c.Name...)
		case metaOffsetsDrop:
			dst = append(dst, c.DropBy)
			dst = append(dst, c.Name...)
		case metaOffsetSet:
			if len(c.Offset.group) > math.MaxUint16 || len(c.Offset.topic) > math.MaxUint16 {
				return dst, fmt.Errorf("%w: group or topic name too long", ErrMetaRecord)
			}
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(c.Offset.group)))
			dst = append(dst, c.Offset.group...)
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(c.Offset.topic)))
			dst = append(dst, c.Offset.topic...)
			dst = binary.BigEndian.AppendUint32(dst, uint32(c.Offset.queue))
			dst = binary.BigEndian.AppendUint64(dst, uint64(c.Value))
		case metaProducerEpoch:
			dst = binary.BigEndian.AppendUint32(dst, uint32(c.Epoch))
			dst = append(dst, c.Name...)
		case metaDelayProgres:
			if len(c.Delay.Levels) > math.MaxUint16 {
				return dst, fmt.Errorf("%w: %d delay levels", ErrMetaRecord, len(c.Delay.Levels))
			}
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(c.Delay.Levels)))
			for _, p := range c.Delay.Levels {
				dst = binary.BigEndian.AppendUint64(dst, uint64(p))
			}
			dst = binary.BigEndian.AppendUint64(dst, uint64(c.Delay.TimerDue))
			dst = binary.BigEndian.AppendUint64(dst, uint64(c.Delay.TimerNext))
		default:
			return dst, fmt.Errorf("%w: unknown change kind %d", ErrMetaRecord, c.Kind)
		}
		binary.BigEndian.PutUint32(dst[start-4:start], uint32(len(dst)-start))
	}
	return dst, nil
}

// decodeMetaRecord decodes a record body; the result does not alias b.
func decodeMetaRecord(b []byte) (metaRecord, error) {
	var r metaRecord
	if len(b) < metaHeaderLen {
		return r, fmt.Errorf("%w: %d bytes", ErrMetaRecord, len(b))
	}
	if b[0] != metaMagic0 || b[1] != metaMagic1 {
		return r, fmt.Errorf("%w: bad magic %#02x%02x", ErrMetaRecord, b[0], b[1])
	}
	if b[2] != metaVersion {
		return r, fmt.Errorf("%w: version %d (this broker reads %d)", ErrMetaRecord, b[2], metaVersion)
	}
	if b[3]&^metaFlagSnap != 0 {
		return r, fmt.Errorf("%w: unknown flags %#x", ErrMetaRecord, b[3])
	}
	r.Snapshot = b[3]&metaFlagSnap != 0
	n := binary.BigEndian.Uint32(b[4:])
	rest := b[metaHeaderLen:]
	// Each change takes at least 5 bytes: a count beyond that is a lie.
	if n == 0 || uint64(n)*5 > uint64(len(rest)) {
		return r, fmt.Errorf("%w: %d changes in %d bytes", ErrMetaRecord, n, len(rest))
	}
	r.Changes = make([]metaChange, 0, n)
	for i := uint32(0); i < n; i++ {
		if len(rest) < 5 {
			return r, fmt.Errorf("%w: change %d truncated", ErrMetaRecord, i)
		}
		kind := rest[0]
		size := binary.BigEndian.Uint32(rest[1:])
		rest = rest[5:]
		if uint64(size) > uint64(len(rest)) {
			return r, fmt.Errorf("%w: change %d of %d bytes past the end", ErrMetaRecord, i, size)
		}
		p := rest[:size]
		rest = rest[size:]
		c, err := decodeMetaChange(kind, p)
		if err != nil {
			return r, fmt.Errorf("%w: change %d: %v", ErrMetaRecord, i, err)
		}
		r.Changes = append(r.Changes, c)
	}
	if len(rest) != 0 {
		return r, fmt.Errorf("%w: %d trailing bytes", ErrMetaRecord, len(rest))
	}
	return r, nil
}

func decodeMetaChange(kind uint8, p []byte) (metaChange, error) {
	c := metaChange{Kind: kind}
	switch kind {
	case metaTopicPut:
		if err := json.Unmarshal(p, &c.Topic); err != nil {
			return c, err
		}
		if c.Topic.TopicName == "" || len(c.Topic.TopicName) > protocol.MaxTopicLen {
			return c, errors.New("topic put: bad topic name")
		}
	case metaGroupPut:
		if err := json.Unmarshal(p, &c.Group); err != nil {
			return c, err
		}
		if err := ValidateGroup(c.Group.GroupName); err != nil {
			return c, err
		}
	case metaTopicDelete, metaGroupDelete:
		if len(p) == 0 {
			return c, errors.New("empty name")
		}
		c.Name = string(p)
	case metaOffsetsDrop:
		if len(p) < 2 || (p[0] != metaDropGroup && p[0] != metaDropTopic) {
			return c, errors.New("bad offsets drop")
		}
		c.DropBy, c.Name = p[0], string(p[1:])
	case metaOffsetSet:
		g, p, ok := cutString16(p)
		if !ok {
			return c, errors.New("offset: bad group")
		}
		t, p, ok := cutString16(p)
		if !ok || len(p) != 12 || g == "" || t == "" {
			return c, errors.New("offset: bad topic or value")
		}
		c.Offset = offsetID{group: g, topic: t, queue: int32(binary.BigEndian.Uint32(p))}
		c.Value = int64(binary.BigEndian.Uint64(p[4:]))
	case metaProducerEpoch:
		if len(p) < 5 || len(p) > 4+maxProducerIDLen || int32(binary.BigEndian.Uint32(p)) < 0 {
			return c, errors.New("bad producer epoch")
		}
		c.Epoch, c.Name = int32(binary.BigEndian.Uint32(p)), string(p[4:])
	case metaDelayProgres:
		if len(p) < 2 {
			return c, errors.New("delay progress truncated")
		}
		n := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if len(p) != n*8+16 {
			return c, fmt.Errorf("delay progress of %d levels in %d bytes", n, len(p))
		}
		c.Delay.Levels = make([]int64, n)
		for i := range c.Delay.Levels {
			c.Delay.Levels[i] = int64(binary.BigEndian.Uint64(p[i*8:]))
		}
		p = p[n*8:]
		c.Delay.TimerDue = int64(binary.BigEndian.Uint64(p))
		c.Delay.TimerNext = int64(binary.BigEndian.Uint64(p[8:]))
	default:
		return c, fmt.Errorf("unknown kind %d", kind)
	}
	return c, nil
}

func cutString16(p []byte) (string, []byte, bool) {
	if len(p) < 2 {
		return "", p, false
	}
	n := int(binary.BigEndian.Uint16(p))
	if len(p) < 2+n {
		return "", p, false
	}
	return string(p[2 : 2+n]), p[2+n:], true
}
