package protocol

import "testing"

// The HTTP problem codes and the remoting response codes of one failure
// must fall in the same class, so a client's errors.Is works the same
// over both transports.
func TestClassOfProblemAndResponseAgree(t *testing.T) {
	for _, tc := range []struct {
		name          string
		problem, resp int
		want          Class
	}{
		{"topic not found", ProblemTopicNotFound, RespTopicNotExist, ClassTopicNotFound},
		{"topic exists", ProblemTopicExists, RespTopicExistAlready, ClassTopicExists},
		{"group not found", ProblemGroupNotFound, RespSubscriptionGroupNotExist, ClassGroupNotFound},
		{"message not found", ProblemMessageNotFound, RespQueryNotFound, ClassMessageNotFound},
		{"permission", ProblemNoPermission, RespNoPermission, ClassPermissionDenied},
		{"unavailable", ProblemServiceNotAvailable, RespServiceNotAvailable, ClassUnavailable},
		{"busy", ProblemBusy, RespSystemBusy, ClassThrottled},
		{"illegal", ProblemMessageIllegal, RespMessageIllegal, ClassMessageIllegal},
		{"system error", ProblemSystemError, RespSystemError, ClassOther},
	} {
		if got := ClassOf(tc.problem); got != tc.want {
			t.Errorf("%s: ClassOf(problem %d) = %v, want %v", tc.name, tc.problem, got, tc.want)
		}
		if got := ClassOf(tc.resp); got != tc.want {
			t.Errorf("%s: ClassOf(response %d) = %v, want %v", tc.name, tc.resp, got, tc.want)
		}
	}
	for code, want := range map[int]Class{
		RespSuccess: ClassNone, ProblemGroupExists: ClassGroupExists, RespFlowControl: ClassThrottled,
		RespProducerFenced: ClassProducerFenced, RespOutOfOrderSequence: ClassOutOfOrderSequence,
		ProblemInvalidRequest: ClassOther, 99999: ClassOther,
	} {
		if got := ClassOf(code); got != want {
			t.Errorf("ClassOf(%d) = %v, want %v", code, got, want)
		}
	}
	if s := Class(200).String(); s != "class(200)" {
		t.Errorf("unknown class prints %q", s)
	}
}
