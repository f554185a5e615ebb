package idempotence

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

var q0 = Queue{Topic: "t", ID: 0}

// stored makes n results starting at commitlog offset off (100 bytes
// apart) and queue offset qoff.
func stored(off, qoff int64, n int) []Stored {
	out := make([]Stored, n)
	for i := range out {
		out[i] = Stored{CommitlogOffset: off + int64(i)*100, QueueOffset: qoff + int64(i)}
	}
	return out
}

func TestCheck(t *testing.T) {
	type send struct {
		epoch int32
		first int64
		count int
	}
	tests := []struct {
		name    string
		before  []send // recorded first, each stored after the previous
		check   send
		want    Decision
		wantRes []Stored
		wantErr error
	}{
		{name: "first batch starts at 0", check: send{0, 0, 3}, want: Append},
		{name: "unknown producer with a later sequence", check: send{0, 5, 1}, wantErr: ErrOutOfOrder},
		{name: "next in order", before: []send{{0, 0, 3}}, check: send{0, 3, 2}, want: Append},
		{name: "gap", before: []send{{0, 0, 3}}, check: send{0, 4, 1}, wantErr: ErrOutOfOrder},
		{name: "retry of the last batch", before: []send{{0, 0, 3}, {0, 3, 2}}, check: send{0, 3, 2},
			want: Duplicate, wantRes: stored(300, 3, 2)},
		{name: "retry of part of a batch", before: []send{{0, 0, 3}}, check: send{0, 1, 1},
			want: Duplicate, wantRes: stored(100, 1, 1)},
		{name: "retry spanning two batches", before: []send{{0, 0, 3}, {0, 3, 2}}, check: send{0, 2, 3},
			want: Duplicate, wantRes: stored(200, 2, 3)},
		{name: "retry past the last sequence", before: []send{{0, 0, 3}}, check: send{0, 2, 3}, wantErr: ErrOutOfOrder},
		{name: "retry older than the cache", before: []send{{0, 0, 1}, {0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 1}, {0, 5, 1}},
			check: send{0, 0, 1}, wantErr: ErrOutOfOrder},
		{name: "oldest cached batch", before: []send{{0, 0, 1}, {0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 1}, {0, 5, 1}},
			check: send{0, 1, 1}, want: Duplicate, wantRes: stored(100, 1, 1)},
		{name: "older epoch fenced", before: []send{{2, 0, 1}}, check: send{1, 1, 1}, wantErr: ErrFenced},
		{name: "newer epoch continues the sequence", before: []send{{1, 0, 2}}, check: send{2, 2, 1}, want: Append},
		{name: "newer epoch retry is a duplicate", before: []send{{1, 0, 2}}, check: send{2, 0, 2},
			want: Duplicate, wantRes: stored(0, 0, 2)},
		{name: "empty batch", check: send{0, 0, 0}, wantErr: ErrInvalid},
		{name: "negative sequence", check: send{0, -1, 1}, wantErr: ErrInvalid},
		{name: "negative epoch", check: send{-1, 0, 1}, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New()
			var off int64
			for _, s := range tt.before {
				if d, _, err := tab.Check("p", s.epoch, q0, s.first, s.count); err != nil || d != Append {
					t.Fatalf("setup %+v: %v %v", s, d, err)
				}
				tab.Record("p", s.epoch, q0, s.first, stored(off, s.first, s.count), 1)
				off += int64(s.count) * 100
			}
			d, res, err := tab.Check("p", tt.check.epoch, q0, tt.check.first, tt.check.count)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || d != tt.want || !reflect.DeepEqual(res, tt.wantRes) {
				t.Fatalf("got %v %v %v, want %v %v", d, res, err, tt.want, tt.wantRes)
			}
		})
	}
}

func TestQueuesAreIndependent(t *testing.T) {
	tab := New()
	tab.Record("p", 0, q0, 0, stored(0, 0, 3), 1)
	if d, _, err := tab.Check("p", 0, Queue{Topic: "t", ID: 1}, 0, 1); err != nil || d != Append {
		t.Fatalf("other queue: %v %v", d, err)
	}
	if _, _, err := tab.Check("p", 0, Queue{Topic: "u", ID: 0}, 3, 1); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("other topic continuing the sequence: %v", err)
	}
}

func TestInitFencesAndReportsLastSequences(t *testing.T) {
	tab := New()
	e1, last := tab.Init("p", 1)
	if e1 != 1 || len(last) != 0 {
		t.Fatalf("first init: %d %v", e1, last)
	}
	tab.Record("p", e1, q0, 0, stored(0, 0, 4), 2)
	e2, last := tab.Init("p", 3)
	if e2 != 2 || last[q0] != 3 {
		t.Fatalf("second init: %d %v", e2, last)
	}
	if _, _, err := tab.Check("p", e1, q0, 4, 1); !errors.Is(err, ErrFenced) {
		t.Fatalf("old instance: %v", err)
	}
	if d, _, err := tab.Check("p", e2, q0, 4, 1); err != nil || d != Append {
		t.Fatalf("new instance: %v %v", d, err)
	}
}

func TestApplyRebuildsWhatRecordBuilt(t *testing.T) {
	live := New()
	live.Record("p", 1, q0, 0, stored(0, 10, 3), 5)
	live.Record("p", 1, q0, 3, stored(300, 13, 2), 6)
	rebuilt := New()
	for i, s := range append(stored(0, 10, 3), stored(300, 13, 2)...) {
		rebuilt.Apply("p", 1, q0, int64(i), s, 6)
		rebuilt.Apply("p", 1, q0, int64(i), s, 6) // replayed twice: no effect
	}
	for _, tab := range []*Table{live, rebuilt} {
		d, res, err := tab.Check("p", 1, q0, 1, 3)
		if err != nil || d != Duplicate || !reflect.DeepEqual(res, stored(100, 11, 3)) {
			t.Fatalf("retry: %v %v %v", d, res, err)
		}
		if d, _, err := tab.Check("p", 1, q0, 5, 1); err != nil || d != Append {
			t.Fatalf("next: %v %v", d, err)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	tab := New()
	tab.Record("p", 2, q0, 0, stored(0, 0, 3), 5)
	tab.Record("q", 0, Queue{Topic: "u", ID: 3}, 0, stored(900, 7, 1), 6)
	data, err := tab.Snapshot(1234)
	if err != nil {
		t.Fatal(err)
	}
	got, covers, err := Restore(data)
	if err != nil || covers != 1234 {
		t.Fatalf("restore: %v %d", err, covers)
	}
	if !reflect.DeepEqual(got.Producers(), tab.Producers()) {
		t.Fatalf("restored %+v, want %+v", got.Producers(), tab.Producers())
	}
	if d, res, err := got.Check("p", 2, q0, 0, 3); err != nil || d != Duplicate || !reflect.DeepEqual(res, stored(0, 0, 3)) {
		t.Fatalf("restored retry: %v %v %v", d, res, err)
	}
	for _, bad := range []string{"", "{", `{"v":9}`, `{"v":1,"covers":-1}`, `{"v":1,"producers":[{"id":""}]}`,
		`{"v":1,"producers":[{"id":"p","queues":[{"batches":[{"offs":[]}]}]}]}`} {
		if _, _, err := Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%q) accepted", bad)
		}
	}
}

func TestExpire(t *testing.T) {
	tab := New()
	day := 24 * time.Hour
	tab.Record("old", 0, q0, 0, stored(0, 0, 1), 0)
	tab.Record("new", 0, q0, 0, stored(100, 1, 1), (6 * day).Milliseconds())
	if gone := tab.Expire((7*day).Milliseconds()+1, 7*day); len(gone) != 1 || gone[0] != "old" || tab.Len() != 1 || tab.Producers()[0].ID != "new" {
		t.Fatalf("expired %v, left %+v", gone, tab.Producers())
	}
}

func FuzzRestore(f *testing.F) {
	tab := New()
	tab.Record("p", 2, q0, 0, stored(0, 0, 3), 5)
	data, _ := tab.Snapshot(10)
	f.Add(data)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := Restore(data)
		if err != nil {
			return
		}
		for _, p := range got.Producers() {
			for q, last := range p.LastSeqs {
				_, _, _ = got.Check(p.ID, p.Epoch, q, max(last+1, 0), 1)
				_, _, _ = got.Check(p.ID, p.Epoch, q, 0, 2)
			}
		}
	})
}

func TestApplySkipsCopiesAndRestartsAtZero(t *testing.T) {
	tab := New()
	for i, s := range stored(0, 0, 3) {
		tab.Apply("p", 0, q0, int64(i), s, 1)
	}
	tab.Apply("p", 0, q0, 7, Stored{CommitlogOffset: 900, QueueOffset: 9}, 2) // a copy stored elsewhere: skipped
	if _, _, err := tab.Check("p", 0, q0, 3, 1); err != nil {
		t.Fatalf("after a skipped copy: %v", err)
	}
	tab.Apply("p", 0, q0, 0, Stored{CommitlogOffset: 1000, QueueOffset: 10}, 3) // restarted after expiry
	if d, res, err := tab.Check("p", 0, q0, 0, 1); err != nil || d != Duplicate || res[0].CommitlogOffset != 1000 {
		t.Fatalf("after a restart at 0: %v %v %v", d, res, err)
	}
}

// A replica applies the log while its broker also records its own sends:
// whichever comes first, the state is the same, and a whole replay from
// the start of the queue (seq 0 again) does not reset it.
func TestApplyAndRecordOverlap(t *testing.T) {
	want := New()
	want.Record("p", 1, q0, 0, stored(0, 0, 3), 5)
	want.Record("p", 1, q0, 3, stored(300, 3, 2), 5)

	applyFirst := New()
	for i, s := range stored(0, 0, 3) {
		applyFirst.Apply("p", 1, q0, int64(i), s, 5)
	}
	applyFirst.Record("p", 1, q0, 0, stored(0, 0, 3), 5) // recorded after the log fed it
	applyFirst.Record("p", 1, q0, 3, stored(300, 3, 2), 5)

	recordFirst := New()
	recordFirst.Record("p", 1, q0, 0, stored(0, 0, 3), 5)
	recordFirst.Record("p", 1, q0, 3, stored(300, 3, 2), 5)
	for i, s := range stored(0, 0, 5) { // the log fed again from its start
		recordFirst.Apply("p", 1, q0, int64(i), s, 5)
	}
	for name, tab := range map[string]*Table{"apply first": applyFirst, "record first": recordFirst} {
		for first := int64(0); first < 5; first++ {
			d, res, err := tab.Check("p", 1, q0, first, 1)
			wd, wres, werr := want.Check("p", 1, q0, first, 1)
			if d != wd || !reflect.DeepEqual(res, wres) || (err == nil) != (werr == nil) {
				t.Fatalf("%s: seq %d: %v %v %v, want %v %v %v", name, first, d, res, err, wd, wres, werr)
			}
		}
		if d, _, err := tab.Check("p", 1, q0, 5, 1); err != nil || d != Append {
			t.Fatalf("%s: next: %v %v", name, d, err)
		}
	}
}
