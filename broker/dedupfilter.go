package broker

import (
	"hash/maphash"
	"sync"
)

// keyFilter is a Bloom filter of the dedup keys in the metadata store, so
// that the common case of a dedup-window send — a key never seen — needs
// no lookup there. It never forgets a key it was given (no false
// negatives); its false positives cost a lookup. It only grows until
// rebuilt from the keys the sweep keeps: add, while a rebuild runs, adds
// to both the filter in use and the one being built.
//
// Memory: 16 bits per key kept (at least 128 KiB), about 0.05 % false
// positives with 4 hashes.
type keyFilter struct {
	seed maphash.Seed
	mu   sync.Mutex
	cur  []uint64 // guarded by mu
	next []uint64 // guarded by mu; non-nil while a rebuild runs
}

const filterHashes = 4

func newKeyFilter() *keyFilter {
	return &keyFilter{seed: maphash.MakeSeed(), cur: filterBits(0)}
}

// filterBits allocates a filter sized for n keys.
func filterBits(n int) []uint64 {
	bits := max(1<<20, 16*n)
	return make([]uint64, (bits+63)/64)
}

func (f *keyFilter) positions(key string, fn func(word int, bit uint64)) func(bits []uint64) {
	h := maphash.String(f.seed, key)
	h1, h2 := h, h>>32|h<<32|1
	return func(bits []uint64) {
		m := uint64(len(bits)) * 64
		for i := uint64(0); i < filterHashes; i++ {
			p := (h1 + i*h2) % m
			fn(int(p/64), 1<<(p%64))
		}
	}
}

func setBits(bits []uint64, f *keyFilter, key string) {
	f.positions(key, func(w int, b uint64) { bits[w] |= b })(bits)
}

// add records key (before it is written to the metadata store).
func (f *keyFilter) add(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	setBits(f.cur, f, key)
	if f.next != nil {
		setBits(f.next, f, key)
	}
}

// mayContain is false only for a key never added.
func (f *keyFilter) mayContain(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	all := true
	f.positions(key, func(w int, b uint64) { all = all && f.cur[w]&b != 0 })(f.cur)
	return all
}

// rebuild replaces the filter with one of the keys visit yields (the keys
// kept in the store), sized for n of them. Keys added meanwhile go to
// both filters.
func (f *keyFilter) rebuild(n int, visit func(add func(key string)) error) error {
	next := filterBits(n)
	f.mu.Lock()
	f.next = next
	f.mu.Unlock()
	err := visit(func(key string) {
		f.mu.Lock()
		setBits(next, f, key)
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
