package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The checkpoint file, written whole to a temporary file, synced and renamed
// over the old one (then the directory is synced). Part of the format:
//
//	+---------------------+------------------------------------------------+
//	| magic "FERRYCKP"    | 8 bytes                                        |
//	| version             | uint32 (1)                                     |
//	| offset              | int64: every record below it is synced, valid  |
//	| last store time     | int64 ms                                       |
//	| queue count         | uint32                                         |
//	| queues              | count × (uint8 topic len, topic, int32 queue,  |
//	|                     |          int64 next queue offset)              |
//	| crc                 | uint32 CRC-32 (IEEE) of everything before it   |
//	+---------------------+------------------------------------------------+
const (
	checkpointName    = "checkpoint"
	checkpointMagic   = "FERRYCKP"
	checkpointVersion = 1
)

type checkpoint struct {
	offset      int64
	lastStoreTs int64
	queues      map[queueKey]int64
}

var errBadCheckpoint = errors.New("commitlog: checkpoint unreadable")

func encodeCheckpoint(c checkpoint) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, 32+len(c.queues)*32)
	b = append(b, checkpointMagic...)
	b = be.AppendUint32(b, checkpointVersion)
	b = be.AppendUint64(b, uint64(c.offset))
	b = be.AppendUint64(b, uint64(c.lastStoreTs))
	b = be.AppendUint32(b, uint32(len(c.queues)))
	for k, v := range c.queues {
		b = append(b, byte(len(k.topic)))
		b = append(b, k.topic...)
		b = be.AppendUint32(b, uint32(k.queue))
		b = be.AppendUint64(b, uint64(v))
	}
	return be.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	be := binary.BigEndian
	var c checkpoint
	if len(b) < 36 || string(b[:8]) != checkpointMagic {
		return c, fmt.Errorf("%w: bad header", errBadCheckpoint)
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != be.Uint32(b[len(b)-4:]) {
		return c, fmt.Errorf("%w: checksum mismatch", errBadCheckpoint)
	}
	if v := be.Uint32(b[8:]); v != checkpointVersion {
		return c, fmt.Errorf("%w: version %d", errBadCheckpoint, v)
	}
	c.offset = int64(be.Uint64(b[12:]))
	c.lastStoreTs = int64(be.Uint64(b[20:]))
	n := int(be.Uint32(b[28:]))
	p, end := 32, len(b)-4
	if n > (end-p)/13 { // an entry takes at least 1+0+4+8 bytes
		return c, fmt.Errorf("%w: %d queues cannot fit in %d bytes", errBadCheckpoint, n, end-p)
	}
	c.queues = make(map[queueKey]int64, n)
	for i := 0; i < n; i++ {
		if p >= end {
			return c, fmt.Errorf("%w: truncated", errBadCheckpoint)
		}
		tl := int(b[p])
		p++
		if p+tl+12 > end {
			return c, fmt.Errorf("%w: truncated", errBadCheckpoint)
		}
		k := queueKey{topic: string(b[p : p+tl])}
		p += tl
		k.queue = int32(be.Uint32(b[p:]))
		c.queues[k] = int64(be.Uint64(b[p+4:]))
		p += 12
	}
	if p != end {
		return c, fmt.Errorf("%w: trailing bytes", errBadCheckpoint)
	}
	return c, nil
}

// WriteFileAtomic writes data to dir/name durably: a temporary file, synced,
// renamed over the old one, then the directory synced.
func WriteFileAtomic(fs vfs.FS, dir, name string, data []byte) error {
	tmp := fs.PathJoin(dir, name+".tmp")
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, fs.PathJoin(dir, name)); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

// ReadFile reads a whole small file.
func ReadFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func writeCheckpoint(fs vfs.FS, dir string, c checkpoint) error {
	return WriteFileAtomic(fs, dir, checkpointName, encodeCheckpoint(c))
}

func readCheckpoint(fs vfs.FS, dir string) (checkpoint, error) {
	b, err := ReadFile(fs, fs.PathJoin(dir, checkpointName))
	if err != nil {
		return checkpoint{}, err
	}
	return decodeCheckpoint(b)
}
