package protocol

import "strconv"

// Class is the kind of failure an error answer stands for, the same for a
// remoting response code and an HTTP problem code: what a client branches
// on (a missing topic, a refused write, a busy broker) without knowing the
// transport. ClassOf is the one table from codes to classes.
type Class uint8

// Failure classes. ClassOther is any error answer without a class of its
// own (a system error, an invalid request).
const (
	ClassNone               Class = iota // success
	ClassOther                           // an error with no class of its own
	ClassTopicNotFound                   // TOPIC_NOT_EXIST, problem 17
	ClassTopicExists                     // TOPIC_EXIST_ALREADY, problem 18
	ClassGroupNotFound                   // SUBSCRIPTION_GROUP_NOT_EXIST, problem 26
	ClassGroupExists                     // problem 1007
	ClassMessageNotFound                 // QUERY_NOT_FOUND, problem 22
	ClassPermissionDenied                // NO_PERMISSION, problem 16
	ClassUnavailable                     // SERVICE_NOT_AVAILABLE: drained, disk full, shutting down, read-only
	ClassThrottled                       // SYSTEM_BUSY, FLOW_CONTROL, problem 2 (HTTP 429)
	ClassMessageIllegal                  // MESSAGE_ILLEGAL, problem 13
	ClassProducerFenced                  // Ferry 30011
	ClassOutOfOrderSequence              // Ferry 30010
)

var classNames = [...]string{
	ClassNone: "none", ClassOther: "other", ClassTopicNotFound: "topic not found",
	ClassTopicExists: "topic exists", ClassGroupNotFound: "group not found", ClassGroupExists: "group exists",
	ClassMessageNotFound: "message not found", ClassPermissionDenied: "permission denied",
	ClassUnavailable: "unavailable", ClassThrottled: "throttled", ClassMessageIllegal: "message illegal",
	ClassProducerFenced: "producer fenced", ClassOutOfOrderSequence: "out of order sequence",
}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// ClassOf returns the class of an error answer's code: a remoting response
// code or an HTTP problem code (the problem codes reuse the response codes
// where RocketMQ has one, so one table serves both).
func ClassOf(code int) Class {
	switch code {
	case RespSuccess:
		return ClassNone
	case RespTopicNotExist:
		return ClassTopicNotFound
	case RespTopicExistAlready:
		return ClassTopicExists
	case RespSubscriptionGroupNotExist:
		return ClassGroupNotFound
	case ProblemGroupExists:
		return ClassGroupExists
	case RespQueryNotFound:
		return ClassMessageNotFound
	case RespNoPermission:
		return ClassPermissionDenied
	case RespServiceNotAvailable, RespSlaveNotAvailable:
		return ClassUnavailable
	case RespSystemBusy, RespFlowControl:
		return ClassThrottled
	case RespMessageIllegal:
		return ClassMessageIllegal
	case RespProducerFenced:
		return ClassProducerFenced
	case RespOutOfOrderSequence:
		return ClassOutOfOrderSequence
	}
	return ClassOther
}
