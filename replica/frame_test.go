package replica

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: FrameHello, Version: Version, Epoch: 7, LastEpoch: 6, ReplicaID: 3, Cluster: "DefaultCluster", BrokerName: "broker-a"},
		{Type: FrameHello, Version: Version},
		{Type: FrameEpochEnd, Epoch: -1, Offset: 1 << 40, Start: 1 << 30},
		{Type: FrameFetch, Offset: 123456},
		{Type: FrameData, Epoch: 2, Offset: 1 << 30, Data: []byte("records")},
		{Type: FrameData, Epoch: 2, Offset: 99},
		{Type: FrameAck, Epoch: 2, Written: 500, Flushed: 400},
		{Type: FrameCommit, Epoch: 2, Offset: 450},
		{Type: FrameError, Code: CodeOutOfRange, Reason: "fetch from 9 outside [10, 20]"},
	}
	var stream []byte
	for i := range frames {
		var err error
		if stream, err = AppendFrame(stream, &frames[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	var buf []byte
	for _, want := range frames {
		got, err := ReadFrame(r, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Data) == 0 && len(got.Data) == 0 {
			got.Data, want.Data = nil, nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := ReadFrame(r, &buf); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
	// dataHeader + bytes is the same frame as AppendFrame's.
	d := Frame{Type: FrameData, Epoch: 4, Offset: 77, Data: []byte("abc")}
	enc, _ := AppendFrame(nil, &d)
	if h := dataHeader(nil, 4, 77, 3); !bytes.Equal(append(h, "abc"...), enc) {
		t.Fatalf("dataHeader %x, AppendFrame %x", h, enc)
	}
}

func TestFrameMalformed(t *testing.T) {
	if _, err := AppendFrame(nil, &Frame{Type: 99}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("unknown type encoded: %v", err)
	}
	if _, err := AppendFrame(nil, &Frame{Type: FrameHello, Cluster: string(make([]byte, 256))}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("long cluster encoded: %v", err)
	}
	for name, b := range map[string][]byte{
		"zero length":     {0, 0, 0, 0, 1},
		"too long":        {0xff, 0, 0, 0, 4},
		"unknown type":    {0, 0, 0, 1, 42},
		"short fetch":     {0, 0, 0, 3, 3, 0, 0},
		"long ack":        append([]byte{0, 0, 0, 26, 5}, make([]byte, 25)...),
		"hello name past": append(append([]byte{0, 0, 0, 29, 1}, make([]byte, 26)...), 5, 'x'),
		"error not utf8":  {0, 0, 0, 4, 6, 0, 1, 0xff},
	} {
		if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), new([]byte)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A frame cut short is an unexpected EOF, not a clean one.
	enc, _ := AppendFrame(nil, &Frame{Type: FrameAck, Epoch: 1})
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(enc[:10])), new([]byte)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut frame: %v", err)
	}
}

// FuzzReadFrame: any bytes decode to a frame that re-encodes to the same
// bytes, or to an error; never a panic.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range []Frame{
		{Type: FrameHello, Version: 1, Epoch: 2, Cluster: "c", BrokerName: "b"},
		{Type: FrameData, Epoch: 1, Offset: 5, Data: []byte("xyz")},
		{Type: FrameAck, Written: 3, Flushed: 2},
		{Type: FrameError, Code: 2, Reason: "r"},
	} {
		b, _ := AppendFrame(nil, &fr)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bufio.NewReader(bytes.NewReader(b)), new([]byte))
		if err != nil {
			return
		}
		enc, err := AppendFrame(nil, &fr)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", fr, err)
		}
		if !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, b[:len(enc)])
		}
	})
}
