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
