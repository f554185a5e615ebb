package consumequeue

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeCheckpoint: the checkpoint decoder never panics, fails only
// with ErrBadCheckpoint, and accepts exactly what encodeCheckpoint writes
// for a valid pair of offsets.
func FuzzDecodeCheckpoint(f *testing.F) {
	for _, c := range []checkpoint{{}, {queues: 1 << 30, listeners: 1 << 20}, {queues: 5, listeners: 5}} {
		b := encodeCheckpoint(c)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add(encodeCheckpoint(checkpoint{queues: 1, listeners: 2})) // listeners past the queues
	f.Add([]byte("FERRYCQC"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("error %v does not wrap ErrBadCheckpoint", err)
			}
			return
		}
		if c.queues < 0 || c.listeners < 0 || c.listeners > c.queues {
			t.Fatalf("accepted offsets %+v", c)
		}
		if !bytes.Equal(encodeCheckpoint(c), b) {
			t.Fatalf("%+v encodes differently from the input", c)
		}
	})
}
