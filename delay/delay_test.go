package delay

import (
	"strconv"
	"testing"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
)

func TestDueMessage(t *testing.T) {
	rec := protocol.Record{
		Topic: []byte("SCHEDULE_TOPIC_XXXX"), Body: []byte("b"), ReconsumeTimes: 2, Flag: 7,
		Properties: protocol.EncodeProperties(map[string]string{"DELAY": "3", "REAL_TOPIC": "orders", "REAL_QID": "2", "UNIQ_KEY": "U"}),
	}
	m, err := dueMessage(rec)
	if err != nil {
		t.Fatal(err)
	}
	p := protocol.ParseProperties(m.Properties)
	if m.Topic != "orders" || m.QueueID != 2 || m.ReconsumeTimes != 2 || m.Flag != 7 || p["UNIQ_KEY"] != "U" {
		t.Fatalf("%+v %v", m, p)
	}
	if _, ok := p["DELAY"]; ok {
		t.Fatal("DELAY kept")
	}
	rec.Properties = protocol.EncodeProperties(map[string]string{"DELAY": "3"})
	if _, err := dueMessage(rec); err == nil {
		t.Fatal("a record without REAL_TOPIC was accepted")
	}
}

func timerRecord(off int64, due int64) consumequeue.Record {
	return consumequeue.Record{
		Entry: consumequeue.Entry{Offset: off, Size: 100}, Topic: []byte("TIMER"),
		Properties: protocol.EncodeProperties(map[string]string{"TIMER_DELIVER_MS": strconv.FormatInt(due, 10)}),
	}
}

// A timer entry dispatched late, with a due time the deliverer already
// scanned past, must still be delivered: it is indexed just above the floor.
func TestTimerIndexLateEntry(t *testing.T) {
	_, ti := memTimerIndex(t)
	if err := ti.Dispatch([]consumequeue.Record{timerRecord(10, 1000), timerRecord(20, 2000), {Topic: []byte("other")}}); err != nil {
		t.Fatal(err)
	}
	keys, next, err := ti.scan(timerKey{}, 1500, 10)
	if err != nil || len(keys) != 1 || keys[0] != (timerKey{1000, 10}) || next != (timerKey{2000, 20}) {
		t.Fatalf("scan: %v next %v (%v)", keys, next, err)
	}
	cursor := timerKey{due: 1000, off: 11}
	// Late: due 900, below the floor (1000) the deliverer reached.
	if err := ti.Dispatch([]consumequeue.Record{timerRecord(30, 900)}); err != nil {
		t.Fatal(err)
	}
	keys, _, err = ti.scan(cursor, 1500, 10)
	if err != nil || len(keys) != 1 || keys[0].off != 30 {
		t.Fatalf("late entry not delivered: %v (%v)", keys, err)
	}
	if n, _ := ti.Count(); n != 3 {
		t.Fatalf("%d entries", n)
	}
	if err := ti.deleteThrough(keys[0]); err != nil {
		t.Fatal(err)
	}
	if n, _ := ti.Count(); n != 1 {
		t.Fatalf("%d entries after trimming delivered ones", n)
	}
	if m, _ := ti.minOffset(timerKey{}); m != 20 {
		t.Fatalf("min offset %d", m)
	}
}
