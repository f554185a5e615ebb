package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The epoch history of a replicated log: from each entry's StartOffset on,
// the log holds what the master of Epoch wrote. It lives in the file
// "epochs" next to the segments, rewritten whole on every change (a
// temporary file, synced, renamed, the directory synced). Part of the
// format:
//
//	+---------------------+------------------------------------------------+
//	| magic "FERRYEPO"    | 8 bytes                                        |
//	| version             | uint32 (1)                                     |
//	| count               | uint32                                         |
//	| entries             | count × (int64 epoch, int64 start offset)      |
//	| crc                 | uint32 CRC-32 (IEEE) of everything before it   |
//	+---------------------+------------------------------------------------+
//
// No file means an empty history.
const (
	epochsName    = "epochs"
	epochsMagic   = "FERRYEPO"
	epochsVersion = 1
)

// EpochEntry is one entry of the epoch history.
type EpochEntry struct {
	Epoch       int64
	StartOffset int64
}

// ErrBadEpochs marks an epoch history file that cannot be read.
var ErrBadEpochs = errors.New("commitlog: epoch history unreadable")

func encodeEpochs(h []EpochEntry) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, 20+16*len(h))
	b = append(b, epochsMagic...)
	b = be.AppendUint32(b, epochsVersion)
	b = be.AppendUint32(b, uint32(len(h)))
	for _, e := range h {
		b = be.AppendUint64(b, uint64(e.Epoch))
		b = be.AppendUint64(b, uint64(e.StartOffset))
	}
	return be.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func decodeEpochs(b []byte) ([]EpochEntry, error) {
	be := binary.BigEndian
	if len(b) < 20 || string(b[:8]) != epochsMagic {
		return nil, fmt.Errorf("%w: bad header", ErrBadEpochs)
	}
	if crc32.ChecksumIEEE(b[:len(b)-4]) != be.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadEpochs)
	}
	if v := be.Uint32(b[8:]); v != epochsVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadEpochs, v)
	}
	n := int(be.Uint32(b[12:]))
	if 16+16*n+4 != len(b) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrBadEpochs, n, len(b))
	}
	h := make([]EpochEntry, n)
	for i := range h {
		p := 16 + 16*i
		h[i] = EpochEntry{Epoch: int64(be.Uint64(b[p:])), StartOffset: int64(be.Uint64(b[p+8:]))}
		if i > 0 && (h[i].Epoch <= h[i-1].Epoch || h[i].StartOffset < h[i-1].StartOffset) {
			return nil, fmt.Errorf("%w: entry %d (%d at %d) does not follow (%d at %d)", ErrBadEpochs,
				i, h[i].Epoch, h[i].StartOffset, h[i-1].Epoch, h[i-1].StartOffset)
		}
	}
	return h, nil
}

// epochHistory is the log's epoch history, loaded from its file on first
// use. Its own mutex guards it; a caller holding the log's append lock
// may take it (lock order: Log.mu, then epochHistory.mu).
type epochHistory struct {
	fs  vfs.FS
	dir string

	mu      sync.Mutex
	entries []EpochEntry
	loaded  bool
}

// loadLocked reads the history file once. Called with mu held.
func (h *epochHistory) loadLocked() error {
	if h.loaded {
		return nil
	}
	b, err := ReadFile(h.fs, h.fs.PathJoin(h.dir, epochsName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		h.entries = nil
	case err != nil:
		return fmt.Errorf("commitlog: read the epoch history: %w", err)
	default:
		if h.entries, err = decodeEpochs(b); err != nil {
			return err
		}
	}
	h.loaded = true
	return nil
}

func (h *epochHistory) storeLocked(entries []EpochEntry) error {
	if err := WriteFileAtomic(h.fs, h.dir, epochsName, encodeEpochs(entries)); err != nil {
		return fmt.Errorf("commitlog: write the epoch history: %w", err)
	}
	h.entries = entries
	return nil
}

// get returns a copy of the history, oldest first.
func (h *epochHistory) get() ([]EpochEntry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.loadLocked(); err != nil {
		return nil, err
	}
	return slices.Clone(h.entries), nil
}

// start appends the entry (epoch, start) durably; written is the log's
// end, which start must not pass.
func (h *epochHistory) start(epoch, start, written int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.loadLocked(); err != nil {
		return err
	}
	if n := len(h.entries); n > 0 {
		if last := h.entries[n-1]; epoch <= last.Epoch || start < last.StartOffset {
			return fmt.Errorf("commitlog: epoch %d at %d does not follow the last entry, epoch %d at %d", epoch, start, last.Epoch, last.StartOffset)
		}
	}
	if start > written {
		return fmt.Errorf("%w: epoch %d starts at %d, past the log's end %d", ErrOutOfRange, epoch, start, written)
	}
	return h.storeLocked(append(slices.Clone(h.entries), EpochEntry{Epoch: epoch, StartOffset: start}))
}

// truncate drops the entries starting at or after off.
func (h *epochHistory) truncate(off int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.loadLocked(); err != nil {
		return err
	}
	n := len(h.entries)
	for n > 0 && h.entries[n-1].StartOffset >= off {
		n--
	}
	if n == len(h.entries) {
		return nil
	}
	return h.storeLocked(slices.Clone(h.entries[:n]))
}

// Epochs returns the epoch history, oldest first.
func (l *Log) Epochs() ([]EpochEntry, error) { return l.epochs.get() }

// StartEpoch records durably that from start on the log holds what the
// master of epoch writes. The epoch must be above the last one recorded,
// and start neither before the last entry's start nor past the log's end.
func (l *Log) StartEpoch(epoch, start int64) error {
	return l.epochs.start(epoch, start, l.WrittenOffset())
}
