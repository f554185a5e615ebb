package broker

import (
	"strconv"
	"testing"
)

func TestKeyFilterNoFalseNegatives(t *testing.T) {
	f := newKeyFilter()
	for i := range 50000 {
		f.add("k" + strconv.Itoa(i))
	}
	fp := 0
	for i := range 50000 {
		if !f.mayContain("k" + strconv.Itoa(i)) {
			t.Fatalf("k%d added but not found", i)
		}
		if f.mayContain("absent" + strconv.Itoa(i)) {
			fp++
		}
	}
	if fp > 500 {
		t.Fatalf("%d false positives in 50,000", fp)
	}
	// A rebuild keeps what it visits and what is added meanwhile, and
	// forgets the rest.
	err := f.rebuild(10, func(add func(string)) error {
		add("k1")
		f.add("during")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.mayContain("k1") || !f.mayContain("during") {
		t.Fatal("rebuild lost a key")
	}
	gone := 0
	for i := 2; i < 1000; i++ {
		if !f.mayContain("k" + strconv.Itoa(i)) {
			gone++
		}
	}
	if gone < 990 {
		t.Fatalf("rebuild forgot only %d of 998 swept keys", gone)
	}
}

// Far more keys than the filter was sized for, with no rebuild between:
// it grows, and its false positives stay near the design rate.
func TestKeyFilterGrows(t *testing.T) {
	f := newKeyFilter()
	start := f.size()
	n := 4 * filterMinBits / filterKeyBits
	for i := range n {
		f.add("k" + strconv.Itoa(i))
	}
	if f.size() <= start {
		t.Fatalf("filter of %d keys still %d bytes", n, f.size())
	}
	fp := 0
	for i := range 100000 {
		if !f.mayContain("k" + strconv.Itoa(i)) {
			t.Fatalf("k%d added but not found", i)
		}
		if f.mayContain("absent" + strconv.Itoa(i)) {
			fp++
		}
	}
	if fp > 1500 { // 1.5 % (design rate ~0.5 %); a filter that never grew would answer yes to ~15 %
		t.Fatalf("%d false positives in 100,000", fp)
	}
}
