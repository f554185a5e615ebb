package broker

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
)

func sampleMetaChanges() []metaChange {
	return []metaChange{
		{Kind: metaTopicPut, Topic: TopicConfig{TopicName: "orders", ReadQueueNums: 8, WriteQueueNums: 4, Perm: protocol.PermRead | protocol.PermWrite, TopicFilterType: "SINGLE_TAG"}},
		{Kind: metaTopicDelete, Name: "old"},
		{Kind: metaGroupPut, Group: DefaultGroupConfig("billing", 5)},
		{Kind: metaGroupDelete, Name: "gone"},
		{Kind: metaOffsetSet, Offset: offsetID{"billing", "orders", 3}, Value: 42},
		{Kind: metaOffsetsDrop, DropBy: metaDropGroup, Name: "gone"},
		{Kind: metaOffsetsDrop, DropBy: metaDropTopic, Name: "old"},
		{Kind: metaDelayProgres, Delay: delay.Progress{Levels: []int64{1, 2, 0}, TimerDue: 1700000000000, TimerNext: 4096}},
		{Kind: metaProducerEpoch, Name: "orders-app-1", Epoch: 7},
	}
}

func TestMetaRecordRoundTrip(t *testing.T) {
	for _, snap := range []bool{false, true} {
		in := sampleMetaChanges()
		b, err := encodeMetaRecord(nil, snap, in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeMetaRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if r.Snapshot != snap || !reflect.DeepEqual(r.Changes, in) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", r.Changes, in)
		}
		// Every strict prefix is refused, never decoded as something else.
		for n := 0; n < len(b); n++ {
			if _, err := decodeMetaRecord(b[:n]); !errors.Is(err, ErrMetaRecord) {
				t.Fatalf("prefix of %d bytes: %v", n, err)
			}
		}
	}
}

func TestMetaRecordRefuses(t *testing.T) {
	good, err := encodeMetaRecord(nil, false, sampleMetaChanges()[4:5])
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, b := range map[string][]byte{
		"magic":    mod(func(b []byte) []byte { b[0] = 0; return b }),
		"version":  mod(func(b []byte) []byte { b[2] = 2; return b }),
		"flags":    mod(func(b []byte) []byte { b[3] = 2; return b }),
		"count 0":  mod(func(b []byte) []byte { b[7] = 0; return b }),
		"count 2":  mod(func(b []byte) []byte { b[7] = 2; return b }),
		"kind":     mod(func(b []byte) []byte { b[8] = 99; return b }),
		"trailing": mod(func(b []byte) []byte { return append(b, 0) }),
	} {
		if _, err := decodeMetaRecord(b); !errors.Is(err, ErrMetaRecord) {
			t.Errorf("%s: %v, want ErrMetaRecord", name, err)
		}
	}
	if _, err := encodeMetaRecord(nil, false, nil); err == nil {
		t.Fatal("a record without changes was encoded")
	}
}

// FuzzMetaRecordDecode: no input panics the decoder, and what it accepts
// encodes back to the same bytes (a record has one encoding).
func FuzzMetaRecordDecode(f *testing.F) {
	for i := range sampleMetaChanges() {
		b, err := encodeMetaRecord(nil, i%2 == 0, sampleMetaChanges()[i:])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{metaMagic0, metaMagic1, metaVersion, 0, 0, 0, 0, 1, metaOffsetSet, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeMetaRecord(b)
		if err != nil {
			if !errors.Is(err, ErrMetaRecord) {
				t.Fatalf("error not ErrMetaRecord: %v", err)
			}
			return
		}
		again, err := encodeMetaRecord(nil, r.Snapshot, r.Changes)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		r2, err := decodeMetaRecord(again)
		if err != nil || !reflect.DeepEqual(r2, r) {
			t.Fatalf("re-encoded record decodes differently: %v\n%+v\n%+v", err, r2, r)
		}
		hasJSON := false
		for _, c := range r.Changes {
			hasJSON = hasJSON || c.Kind == metaTopicPut || c.Kind == metaGroupPut
		}
		if !hasJSON && !bytes.Equal(again, b) {
			t.Fatalf("two encodings of one record:\n%x\n%x", b, again)
		}
	})
}
