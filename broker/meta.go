package broker

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"
)

// The metadata store is a pebble database under <data_dir>/meta holding the
// broker's primary state. Keys (part of the format):
//
//	t/<topic>                           → topic config, JSON
//	g/<group>                           → group config, JSON
//	o/<group>\x00<topic>\x00<queue u32> → committed consumer offset, int64 BE
//	d/<name>                            → delay/timer progress, owned by that service
//	c/<key>                             → a run-time config change (SetConfig), TOML value text
//	k/receipt                           → the key that signs receipt handles (32 random bytes)
//	r/<group>\x00<DLQ queue offset u64>  → a resent dead letter: when, where (dlqresent.go)
//	m/applied                           → log offset below which every metadata record is applied, int64 BE
//
// t/, g/, o/ and the delay progress under d/ are replicated metadata: the
// broker changes them by appending metadata records to the commitlog and
// only the applier writes them here (metalog.go), so every broker that
// replays the same log holds the same. The other keys are this broker's
// own.
type metaStore struct {
	db      *pebble.DB
	reserve *reserveFS  // metafs.go
	full    func() bool // the disk-full state: changes are refused
}

// writable refuses a metadata change while the data disk is full.
func (m *metaStore) writable() error {
	if m.full != nil && m.full() {
		return ErrDiskFull
	}
	return nil
}

const (
	prefixTopic  = "t/"
	prefixGroup  = "g/"
	prefixOffset = "o/"
	prefixConfig = "c/"
	prefixKey    = "k/"
)

type pebbleLogger struct{ log zerolog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.log.Debug().Msgf("pebble: "+format, args...)
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.log.Error().Msgf("pebble: "+format, args...)
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.log.Fatal().Msgf("pebble: "+format, args...)
}

func openMeta(fs vfs.FS, dir string, log zerolog.Logger) (*metaStore, error) {
	if err := fs.MkdirAll(fs.PathDir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("broker: create %s: %w", fs.PathDir(dir), err)
	}
	reserve, err := newReserveFS(fs, dir+".reserve", metaReserveSize, log)
	if err != nil {
		return nil, fmt.Errorf("broker: metadata store reserve: %w", err)
	}
	opts := &pebble.Options{FS: reserve, Logger: pebbleLogger{log}}
	// Bloom filters (every level inherits L0's): a dedup-window send looks
	// up keys that are mostly absent, which without a filter reads index
	// blocks of every table.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("broker: open metadata store %s: %w", dir, err)
	}
	return &metaStore{db: db, reserve: reserve}, nil
}

func (m *metaStore) close() error { return m.db.Close() }

func (m *metaStore) delete(key string) error {
	return m.db.Delete([]byte(key), pebble.Sync)
}

// scan calls fn for every key with prefix.
func (m *metaStore) scan(prefix string, fn func(key, value []byte) error) error {
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	return it.Close()
}

// prefixEnd is the first key after every key starting with p (p's last
// byte is not 0xff in any prefix here).
func prefixEnd(p string) []byte {
	b := []byte(p)
	b[len(b)-1]++
	return b
}

func offsetKey(group, topic string, queue int32) []byte {
	k := make([]byte, 0, len(prefixOffset)+len(group)+len(topic)+6)
	k = append(k, prefixOffset...)
	k = append(k, group...)
	k = append(k, 0)
	k = append(k, topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(queue))
}

func parseOffsetKey(k []byte) (group, topic string, queue int32, ok bool) {
	k = k[len(prefixOffset):]
	if len(k) < 4 {
		return "", "", 0, false
	}
	queue = int32(binary.BigEndian.Uint32(k[len(k)-4:]))
	k = k[:len(k)-4]
	if len(k) == 0 || k[len(k)-1] != 0 {
		return "", "", 0, false
	}
	k = k[:len(k)-1]
	for i, c := range k {
		if c == 0 {
			return string(k[:i]), string(k[i+1:]), queue, true
		}
	}
	return "", "", 0, false
}
