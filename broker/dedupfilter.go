package broker

import (
	"hash/maphash"
	"sync"
)

// keyFilter is a Bloom filter of the dedup keys in the metadata store, so
// that the common case of a dedup-window send — a key never seen — needs
// no lookup there. It never forgets a key it was given (no false
// negatives); its false positives cost a lookup. Between rebuilds (each
// sweep rebuilds it from the keys kept) it grows by layers: once a layer
// holds the keys it was sized for, the next, twice as large, takes the
// new ones, so its false positives stay near their design rate however
// many keys arrive between two sweeps. add, while a rebuild runs, adds to
// both the filter in use and the one being built.
//
// Memory: 16 bits per key (the first layer at least 128 KiB; layers
// double, so at most twice that while it grows), about 0.05 % false
// positives per layer with 4 hashes.
type keyFilter struct {
	seed maphash.Seed
	mu   sync.Mutex
	cur  *bloomLayers // guarded by mu
	next *bloomLayers // guarded by mu; non-nil while a rebuild runs
}

const (
	filterHashes  = 4
	filterKeyBits = 16      // bits per key a layer is sized for
	filterMinBits = 1 << 20 // the smallest layer
)

// bloomLayers is a growing Bloom filter: layers[len-1] takes new keys
// until it holds room keys.
type bloomLayers struct {
	layers [][]uint64
	room   int // keys the last layer is sized for
	n      int // keys added to the last layer
}

func newKeyFilter() *keyFilter {
	return &keyFilter{seed: maphash.MakeSeed(), cur: newBloomLayers(0)}
}

// newBloomLayers allocates a filter sized for n keys.
func newBloomLayers(n int) *bloomLayers {
	bits := max(filterMinBits, filterKeyBits*n)
	return &bloomLayers{layers: [][]uint64{make([]uint64, (bits+63)/64)}, room: bits / filterKeyBits}
}

func (l *bloomLayers) add(h uint64) {
	if l.n >= l.room {
		last := l.layers[len(l.layers)-1]
		l.layers = append(l.layers, make([]uint64, 2*len(last)))
		l.room, l.n = 2*l.room, 0
	}
	l.n++
	bits := l.layers[len(l.layers)-1]
	forPositions(h, len(bits), func(w int, b uint64) { bits[w] |= b })
}

func (l *bloomLayers) has(h uint64) bool {
	for _, bits := range l.layers {
		all := true
		forPositions(h, len(bits), func(w int, b uint64) { all = all && bits[w]&b != 0 })
		if all {
			return true
		}
	}
	return false
}

// forPositions calls fn with the word and bit of each of h's positions
// in a filter of words 64-bit words.
func forPositions(h uint64, words int, fn func(word int, bit uint64)) {
	h1, h2 := h, h>>32|h<<32|1
	m := uint64(words) * 64
	for i := uint64(0); i < filterHashes; i++ {
		p := (h1 + i*h2) % m
		fn(int(p/64), 1<<(p%64))
	}
}

// add records key (before it can be looked up in the metadata store).
func (f *keyFilter) add(key string) {
	h := maphash.String(f.seed, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur.add(h)
	if f.next != nil {
		f.next.add(h)
	}
}

// mayContain is false only for a key never added.
func (f *keyFilter) mayContain(key string) bool {
	h := maphash.String(f.seed, key)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.has(h)
}

// rebuild replaces the filter with one of the keys visit yields (the keys
// kept in the store), sized for n of them. Keys added meanwhile go to
// both filters.
func (f *keyFilter) rebuild(n int, visit func(add func(key string)) error) error {
	next := newBloomLayers(n)
	f.mu.Lock()
	f.next = next
	f.mu.Unlock()
	err := visit(func(key string) {
		h := maphash.String(f.seed, key)
		f.mu.Lock()
		next.add(h)
		f.mu.Unlock()
	})
	f.mu.Lock()
	if err == nil {
		f.cur = next
	}
	f.next = nil
	f.mu.Unlock()
	return err
}

// size is the filter's memory in bytes.
func (f *keyFilter) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, l := range f.cur.layers {
		n += 8 * len(l)
	}
	return n
}
