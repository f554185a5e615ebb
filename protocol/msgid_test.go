package protocol

import (
	"strings"
	"testing"
	"time"
)

// The time field is ms since the start of the current month: an id made
// long after the first one (a process up for months) still reads back as
// its own time, and the field stays within one month.
func TestUniqIDTimeNeverWraps(t *testing.T) {
	start := time.Date(2026, time.January, 3, 12, 0, 0, 0, time.Local)
	for _, after := range []time.Duration{0, 25 * 24 * time.Hour, 50 * 24 * time.Hour, 120 * 24 * time.Hour, 400 * 24 * time.Hour} {
		made := start.Add(after).Truncate(time.Millisecond)
		id := uniqIDAt(made)
		if len(id) != UniqIDLen || strings.ToUpper(id) != id {
			t.Fatalf("id %q: want %d upper-case hex digits", id, UniqIDLen)
		}
		span := monthMillis(made)
		if span > 31*24*3600*1000+3600*1000 {
			t.Errorf("%v after start: time field %d is more than a month", after, span)
		}
		u, err := ParseUniqID(id, made.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if !u.Time.Equal(made) {
			t.Errorf("%v after start: id reads back as %v, made at %v", after, u.Time, made)
		}
		if u.Addr != LocalIPv4() {
			t.Errorf("address %v, want %v", u.Addr, LocalIPv4())
		}
	}
}

// Read in the next month, an id of the month before is placed in that month.
func TestParseUniqIDMonthBefore(t *testing.T) {
	made := time.Date(2026, time.March, 30, 23, 0, 0, 0, time.Local)
	id := uniqIDAt(made)
	u, err := ParseUniqID(id, time.Date(2026, time.April, 2, 1, 0, 0, 0, time.Local))
	if err != nil || !u.Time.Equal(made) {
		t.Fatalf("ParseUniqID = %v %v, want %v", u.Time, err, made)
	}
}

func TestUniqIDsDiffer(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewUniqID()
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestSystemTopics(t *testing.T) {
	if RetryTopic("g") != "%RETRY%g" || DLQTopic("g") != "%DLQ%g" {
		t.Fatal("retry/DLQ topic names")
	}
	if !IsGroupTopic("%RETRY%g") || !IsGroupTopic("%DLQ%g") || IsGroupTopic("orders") {
		t.Fatal("IsGroupTopic")
	}
	for _, s := range []string{"TBW102", "SCHEDULE_TOPIC_XXXX", "FERRY_SYS_TIMER"} {
		if !IsSystemTopic(s) {
			t.Errorf("IsSystemTopic(%s) = false", s)
		}
	}
	if IsSystemTopic("orders") {
		t.Error("IsSystemTopic(orders)")
	}
}
