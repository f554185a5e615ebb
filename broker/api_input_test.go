package broker

import (
	"strings"
	"testing"
)

// TestAPIRefusesInvalidUTF8: invalid UTF-8 in a JSON body is refused with
// a 400 problem saying so, not stored with U+FFFD in its place.
func TestAPIRefusesInvalidUTF8(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	bad := []byte("{\"messages\":[{\"body\":\"\xff\xfe bad\"}]}")
	p := checkProblem(t, "produce", a.do("POST", "/v1/topics/utf8/messages", bad, "application/json"), 400, 1002)
	if !strings.Contains(p.Detail, "not valid UTF-8 (byte 22)") {
		t.Fatalf("problem %q", p.Detail)
	}
	checkProblem(t, "create topic", a.do("POST", "/v1/topics", []byte("{\"name\":\"t\xc3\"}"), "application/json"), 400, 1002)
	a.produce("utf8", map[string]any{"body": "fine é"})
}

// max=0 is refused alike by a receive and a queue read, and an absent max
// is the documented default on both.
func TestAPIMaxZeroRefusedAlike(t *testing.T) {
	_, a := testHTTPBroker(t, nil)
	a.produce("limits", map[string]any{"body": "x", "queue_id": 0})
	for _, p := range []problem{
		a.fails("POST", "/v1/groups/lg/receive", map[string]any{"topic": "limits", "max": 0}, 400, 1002),
		a.fails("GET", "/v1/topics/limits/queues/0/messages?offset=0&max=0", nil, 400, 1002),
	} {
		if !strings.Contains(p.Detail, "must be 1 to 1000 (absent: ") {
			t.Errorf("max=0: %q", p.Detail)
		}
	}
	if msgs := a.receive("lg", map[string]any{"topic": "limits", "wait_ms": 2000}); len(msgs) != 1 {
		t.Fatalf("receive without max: %d messages", len(msgs))
	}
}
