package consumequeue

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strconv"
	"unicode/utf8"

	"github.com/ferrymq/ferry/protocol"
)

// Part of the format: never change these.
const (
	// EntrySize is the size of one consume-queue entry.
	EntrySize = 20
	// DefaultEntriesPerFile is how many entries a queue file holds
	// (RocketMQ's mappedFileSizeConsumeQueue / 20).
	DefaultEntriesPerFile = 300_000

	// fileNameDigits is the width of a queue file's name: the byte offset
	// of its first entry within the queue, zero-padded.
	fileNameDigits = 20
	// escapedTopicPrefix starts the directory name of a topic that is not
	// made only of RocketMQ's topic characters; the rest is the topic in
	// lower-case hex.
	escapedTopicPrefix = "~"

	checkpointName    = "dispatch.checkpoint"
	checkpointMagic   = "FERRYCQC"
	checkpointVersion = 1
	checkpointSize    = 8 + 4 + 8 + 8 + 4
)

// Entry is one consume-queue entry, with its position in the queue.
type Entry struct {
	QueueOffset int64 // logical offset in the queue (the entry's index)
	Offset      int64 // commitlog offset of the record
	Size        int32 // record size in bytes; 0 marks a hole (no entry was written there)
	TagsCode    int64 // TagsCode of the record's TAGS property, 0 without one
}

// appendEntry appends e's 20-byte encoding to b.
func appendEntry(b []byte, e *Entry) []byte {
	be := binary.BigEndian
	b = be.AppendUint64(b, uint64(e.Offset))
	b = be.AppendUint32(b, uint32(e.Size))
	return be.AppendUint64(b, uint64(e.TagsCode))
}

// decodeEntry decodes the 20 bytes at the start of b as entry number qo.
func decodeEntry(b []byte, qo int64) Entry {
	be := binary.BigEndian
	return Entry{
		QueueOffset: qo,
		Offset:      int64(be.Uint64(b)),
		Size:        int32(be.Uint32(b[8:])),
		TagsCode:    int64(be.Uint64(b[12:])),
	}
}

// TagsCode is RocketMQ's tag hash: Java's String.hashCode of tag, computed
// over its UTF-16 code units, sign-extended to int64; 0 for an empty tag.
// Invalid UTF-8 counts as U+FFFD per bad byte, as Java's decoder does for
// a lone bad byte.
func TagsCode(tag string) int64 {
	var h int32
	for i := 0; i < len(tag); {
		r, n := utf8.DecodeRuneInString(tag[i:])
		i += n
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return int64(h)
}

// fileName is the name of the queue file whose first entry is entry
// number first.
func fileName(first int64) string {
	return fmt.Sprintf("%0*d", fileNameDigits, first*EntrySize)
}

// parseFileName returns the byte offset a queue file's name stands for.
func parseFileName(name string) (int64, bool) {
	if len(name) != fileNameDigits {
		return 0, false
	}
	v, err := strconv.ParseInt(name, 10, 64)
	return v, err == nil && v >= 0
}

// plainTopicChar reports whether c may appear in a topic directory name
// as it is: RocketMQ's topic characters [%|a-zA-Z0-9_-].
func plainTopicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '%' || c == '|' || c == '_' || c == '-'
}

// topicDirName is the directory name of topic: the topic itself when it
// uses only RocketMQ's topic characters, else "~" and its hex encoding, so
// no topic can name "." or "..", hold a separator, or clash with the
// checkpoint file.
func topicDirName(topic string) string {
	for i := 0; i < len(topic); i++ {
		if !plainTopicChar(topic[i]) {
			return escapedTopicPrefix + hex.EncodeToString([]byte(topic))
		}
	}
	return topic
}

// parseTopicDirName inverts topicDirName.
func parseTopicDirName(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	if name[0] == escapedTopicPrefix[0] {
		b, err := hex.DecodeString(name[1:])
		if err != nil || len(b) == 0 {
			return "", false
		}
		return string(b), true
	}
	for i := 0; i < len(name); i++ {
		if !plainTopicChar(name[i]) {
			return "", false
		}
	}
	return name, true
}

// checkpoint is the dispatcher's durable progress:
//
//	+-----------------+--------------------------------------------------+
//	| magic "FERRYCQC"| 8 bytes                                          |
//	| version         | uint32 (1)                                       |
//	| queue offset    | int64: every consume-queue entry of a record     |
//	|                 | below it is in a synced queue file               |
//	| listener offset | int64: every listener made its work for every    |
//	|                 | record below it durable (<= queue offset)        |
//	| crc             | uint32 CRC-32 (IEEE) of everything before it     |
//	+-----------------+--------------------------------------------------+
type checkpoint struct {
	queues    int64
	listeners int64
}

func encodeCheckpoint(c checkpoint) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, checkpointSize)
	b = append(b, checkpointMagic...)
	b = be.AppendUint32(b, checkpointVersion)
	b = be.AppendUint64(b, uint64(c.queues))
	b = be.AppendUint64(b, uint64(c.listeners))
	return be.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	be := binary.BigEndian
	if len(b) != checkpointSize || string(b[:8]) != checkpointMagic {
		return checkpoint{}, fmt.Errorf("%w: bad header", ErrBadCheckpoint)
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != be.Uint32(b[len(b)-4:]) {
		return checkpoint{}, fmt.Errorf("%w: checksum mismatch", ErrBadCheckpoint)
	}
	if v := be.Uint32(b[8:]); v != checkpointVersion {
		return checkpoint{}, fmt.Errorf("%w: version %d", ErrBadCheckpoint, v)
	}
	c := checkpoint{queues: int64(be.Uint64(b[12:])), listeners: int64(be.Uint64(b[20:]))}
	if c.queues < 0 || c.listeners < 0 || c.listeners > c.queues {
		return checkpoint{}, fmt.Errorf("%w: offsets %d, %d", ErrBadCheckpoint, c.queues, c.listeners)
	}
	return c, nil
}

// storeTimestampOf reads STORETIMESTAMP from the first
// recordHeaderForTimestamp bytes of a record (see the commitlog record
// table: SYSFLAG at 36, BORNHOST at 48, 8 or 20 bytes, then the store
// timestamp).
func storeTimestampOf(hdr []byte) int64 {
	return int64(binary.BigEndian.Uint64(hdr[protocol.StoreTimestampPos(hdr):]))
}

const recordHeaderForTimestamp = protocol.PosBornHost + 20 + 8
