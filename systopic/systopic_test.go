package systopic

import "testing"

func TestIs(t *testing.T) {
	for _, c := range []struct {
		topic string
		want  bool
	}{
		{"TBW102", true}, {"SCHEDULE_TOPIC_XXXX", true}, {"FERRY_SYS_TIMER", true},
		{"RMQ_SYS_TRANS_HALF_TOPIC", true}, {"RMQ_SYS_TRANS_OP_HALF_TOPIC", true}, {"RMQ_SYS_TRACE_TOPIC", true},
		{"RMQ_SYS_ANYTHING", true}, {"%RETRY%g", true}, {"%DLQ%g", true},
		{"Orders", false}, {"tbw102", false}, {"RETRY", false}, {"x%DLQ%g", false},
	} {
		if got := Is(c.topic); got != c.want {
			t.Errorf("Is(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
	if g, ok := Group(Retry("billing")); !ok || g != "billing" {
		t.Errorf("Group(Retry) = %q, %v", g, ok)
	}
	if g, ok := Group(DLQ("billing")); !ok || g != "billing" || !IsDLQ(DLQ("billing")) {
		t.Errorf("Group(DLQ) = %q, %v", g, ok)
	}
	if _, ok := Group("billing"); ok {
		t.Error("Group of an ordinary topic")
	}
}
