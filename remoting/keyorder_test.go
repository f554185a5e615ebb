package remoting

import (
	"slices"
	"testing"
)

// TestOrderedKeysFollowsShapeChanges: a remembered order is used only for
// the very key set it was made from; a request of the same code and size
// but other keys is sorted afresh, so the output is always sorted.
func TestOrderedKeysFollowsShapeChanges(t *testing.T) {
	const code = 31999
	shapes := []map[string]string{
		{"b": "1", "a": "2", "c": "3"},
		{"b": "1", "a": "2", "d": "3"},
		{"b": "1", "a": "2", "d": "3"},
		{"z": "1", "a": "2", "c": "3"},
		{"b": "1", "a": "2"},
		{"b": "1", "a": "2", "c": "3"},
	}
	for i, m := range shapes {
		for range 2 { // the second round hits the remembered order
			got := orderedKeys(nil, code, m)
			want := appendSortedKeys(nil, m)
			if !slices.Equal(got, want) {
				t.Fatalf("shape %d: keys %v, want %v", i, got, want)
			}
		}
	}
	if got := orderedKeys(nil, code, nil); got != nil {
		t.Fatalf("empty map gave %v", got)
	}
}

// TestEncodeHeaderRemembersOrder: once a shape is known, encoding its header
// sorts nothing and allocates nothing beyond the output buffer.
func TestEncodeHeaderRemembersOrder(t *testing.T) {
	c, err := DecodeJSONHeader([]byte(capturedHeaders[7].json)) // CONSUMER_SEND_MSG_BACK: a map
	if err != nil {
		t.Fatal(err)
	}
	buf := AppendJSONHeader(nil, c)
	if string(buf) != string(AppendJSONHeader(nil, c)) {
		t.Fatal("encoding is not deterministic")
	}
	slot := keyOrderSlot(c.Code, len(c.ExtFields))
	before := slot.Load()
	if before == nil || before.code != c.Code {
		t.Fatal("the header's order was not remembered")
	}
	allocs := testing.AllocsPerRun(100, func() { buf = AppendJSONHeader(buf[:0], c) })
	if allocs != 0 {
		t.Fatalf("%v allocations per encoding of a known shape", allocs)
	}
	if slot.Load() != before {
		t.Fatal("a known shape replaced its remembered order")
	}
}
