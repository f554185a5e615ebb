package protocol

import (
	"errors"
	"reflect"
	"testing"
)

func multiSample(t testing.TB) ([]MultiEntry, []byte) {
	entries := []MultiEntry{
		{Topic: "A", QueueID: 0, Flag: 1, BornTimestamp: 1795397092887, Body: []byte("one"), Properties: []byte("KEYS\x01k\x02")},
		{Topic: "topic-b", QueueID: 3, Body: []byte{}, Properties: []byte{}},
		{Topic: "A", QueueID: -1, Flag: -7, BornTimestamp: -1, Body: make([]byte, 300), Properties: []byte{}},
	}
	var body []byte
	for i := range entries {
		var err error
		if body, err = AppendMultiEntry(body, &entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	return entries, body
}

func TestMultiRoundTrip(t *testing.T) {
	entries, body := multiSample(t)
	got, err := DecodeMulti(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, entries) {
		t.Fatalf("decoded %+v\nwant %+v", got, entries)
	}
	// Every cut of the body short of an entry boundary is an error.
	for n := 0; n < len(body); n++ {
		if out, err := DecodeMulti(body[:n], got[:0]); err == nil {
			if n != 0 && len(out) > 0 {
				var again []byte
				for i := range out {
					again, _ = AppendMultiEntry(again, &out[i])
				}
				if len(again) != n {
					t.Fatalf("cut at %d decoded as %d bytes of entries", n, len(again))
				}
				continue
			}
			t.Fatalf("cut at %d decoded", n)
		} else if !errors.Is(err, ErrMalformedMulti) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	if _, err := AppendMultiEntry(nil, &MultiEntry{}); err == nil {
		t.Fatal("an entry without topic was encoded")
	}
	results := []MultiResult{{Code: RespSuccess, QueueID: 2, QueueOffset: 9, Text: "7F0000010000"}, {Code: RespNoPermission, QueueID: 1, Text: "reserved"}}
	var rb []byte
	for i := range results {
		rb = AppendMultiResult(rb, &results[i])
	}
	back, err := DecodeMultiResults(rb, nil)
	if err != nil || !reflect.DeepEqual(back, results) {
		t.Fatalf("results %+v %v", back, err)
	}
	if _, err := DecodeMultiResults(rb[:len(rb)-1], nil); !errors.Is(err, ErrMalformedMulti) {
		t.Fatalf("truncated results: %v", err)
	}
}

// FuzzDecodeMulti: the multi-queue batch decoder never panics, fails only
// with ErrMalformedMulti, and what it decodes encodes back to the input.
func FuzzDecodeMulti(f *testing.F) {
	_, body := multiSample(f)
	f.Add(body)
	f.Add([]byte{})
	f.Add([]byte{0, 1, 'T', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := DecodeMulti(b, nil)
		if err != nil {
			if !errors.Is(err, ErrMalformedMulti) || len(entries) != 0 {
				t.Fatalf("error %v with %d entries", err, len(entries))
			}
			return
		}
		var again []byte
		for i := range entries {
			if again, err = AppendMultiEntry(again, &entries[i]); err != nil {
				t.Fatal(err)
			}
		}
		if string(again) != string(b) {
			t.Fatalf("re-encoded %x, input %x", again, b)
		}
		if _, err := DecodeMultiResults(b, nil); err != nil && !errors.Is(err, ErrMalformedMulti) {
			t.Fatal(err)
		}
	})
}
