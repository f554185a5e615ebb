package commitlog

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The cache answers exactly the ranges it holds, with the bytes put
// there, across the ring's wrap, and nothing after a reset or a jump.
func TestTailCache(t *testing.T) {
	var tc tailCache
	var model []byte // the bytes of the log from offset 0
	rng := rand.New(rand.NewPCG(1, 2))
	off := int64(0)
	for range 200 {
		b := make([]byte, 1+rng.IntN(200<<10))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		tc.put(off, b)
		model = append(model, b...)
		off += int64(len(b))
	}
	p := make([]byte, 64<<10)
	for range 2000 {
		n := 1 + rng.IntN(len(p))
		at := rng.Int64N(off - int64(n) + 1)
		ok := tc.get(p[:n], at)
		held := at >= off-tailCacheSize
		if ok != held {
			t.Fatalf("get [%d, %d) with end %d: %v, want %v", at, at+int64(n), off, ok, held)
		}
		if ok && !bytes.Equal(p[:n], model[at:at+int64(n)]) {
			t.Fatalf("get [%d, %d): wrong bytes", at, at+int64(n))
		}
	}
	if tc.get(p[:1], off) {
		t.Fatal("a byte past the end was answered")
	}
	// A write elsewhere starts afresh.
	tc.put(off+100, []byte("xyz"))
	if tc.get(p[:1], off-1) || !tc.get(p[:3], off+100) || string(p[:3]) != "xyz" {
		t.Fatal("a jump did not restart the cache")
	}
	tc.reset()
	if tc.get(p[:3], off+100) {
		t.Fatal("answered after reset")
	}
}
