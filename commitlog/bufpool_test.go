package commitlog

import "testing"

func TestBufPool(t *testing.T) {
	var bp bufPool
	b := bp.get()
	if len(*b) != 0 || cap(*b) < 64<<10 {
		t.Fatalf("a new buffer has len %d, cap %d", len(*b), cap(*b))
	}
	*b = append(*b, "used"...)
	bp.put(b)
	if again := bp.get(); len(*again) != 0 {
		t.Fatalf("a buffer from the pool holds %q", *again)
	}
	// A buffer grown past 8 MiB is not kept.
	huge := make([]byte, 0, 9<<20)
	bp.put(&huge)
	for range 4 {
		if got := bp.get(); cap(*got) == cap(huge) {
			t.Fatal("the pool kept a buffer of 9 MiB")
		}
	}
}
