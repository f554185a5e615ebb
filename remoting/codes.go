package remoting

import "strconv"

// Format constants. Everything in this block is part of the wire format.
const (
	// DefaultMaxFrameSize is the largest frame (the value of the length
	// word) accepted by default; the Java NettyDecoder uses the same limit.
	DefaultMaxFrameSize = 16 << 20

	// maxHeaderLen is the largest header the 24-bit headerLen can describe.
	maxHeaderLen = 1<<24 - 1

	// binaryFixedLen is the size of the fixed part of a ROCKETMQ header:
	// code(2) language(1) version(2) opaque(4) flag(4) remarkLen(4) extLen(4).
	binaryFixedLen = 21

	// FlagResponse (bit0) marks a response; FlagOneway (bit1) a request
	// that expects no answer.
	FlagResponse int32 = 1 << 0
	FlagOneway   int32 = 1 << 1

	// CurrentVersion is the version Ferry writes in the commands it builds:
	// the ordinal of Java MQVersion V4_9_8, what a 4.9.8 broker answers with.
	// It is >= V4_9_4 (401), so Java name servers answer it in standard JSON.
	CurrentVersion int16 = 409
)

// SerializeType selects the header encoding of a frame (top byte of the
// header word).
type SerializeType uint8

// Serialize types (part of the format).
const (
	SerializeJSON     SerializeType = 0
	SerializeRocketMQ SerializeType = 1
)

func (t SerializeType) String() string {
	switch t {
	case SerializeJSON:
		return "JSON"
	case SerializeRocketMQ:
		return "ROCKETMQ"
	}
	return "SerializeType(" + strconv.Itoa(int(t)) + ")"
}

// LanguageCode is the client language carried in every header: a name in
// JSON headers, a byte in binary headers.
type LanguageCode uint8

// Language codes (part of the format: Java LanguageCode ordinals).
const (
	LanguageJava   LanguageCode = 0
	LanguageCPP    LanguageCode = 1
	LanguageDotNet LanguageCode = 2
	LanguagePython LanguageCode = 3
	LanguageDelphi LanguageCode = 4
	LanguageErlang LanguageCode = 5
	LanguageRuby   LanguageCode = 6
	LanguageOther  LanguageCode = 7
	LanguageHTTP   LanguageCode = 8
	LanguageGo     LanguageCode = 9
	LanguagePHP    LanguageCode = 10
	LanguageOMS    LanguageCode = 11
	LanguageRust   LanguageCode = 12
)

// DefaultLanguage is what Ferry writes in the commands it builds. A Java
// broker says JAVA, and every client version's enum parser knows that name,
// so Ferry says it too.
const DefaultLanguage = LanguageJava

var languageNames = [...]string{
	LanguageJava: "JAVA", LanguageCPP: "CPP", LanguageDotNet: "DOTNET",
	LanguagePython: "PYTHON", LanguageDelphi: "DELPHI", LanguageErlang: "ERLANG",
	LanguageRuby: "RUBY", LanguageOther: "OTHER", LanguageHTTP: "HTTP",
	LanguageGo: "GO", LanguagePHP: "PHP", LanguageOMS: "OMS", LanguageRust: "RUST",
}

// String returns the Java enum name; unknown codes read as OTHER.
func (l LanguageCode) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return "OTHER"
}

// normalize maps codes Ferry does not know to LanguageOther, so that a
// decoded header always re-encodes to the same value.
func (l LanguageCode) normalize() LanguageCode {
	if int(l) < len(languageNames) {
		return l
	}
	return LanguageOther
}

// ParseLanguage returns the code for a Java enum name; unknown names give
// LanguageOther.
func ParseLanguage(name string) LanguageCode {
	for i, n := range languageNames {
		if n == name {
			return LanguageCode(i)
		}
	}
	return LanguageOther
}

// Request codes (Java RequestCode). Untyped so they fit Command.Code and
// Mux.Handle without conversions.
const (
	ReqSendMessage                   = 10
	ReqPullMessage                   = 11
	ReqQueryMessage                  = 12
	ReqQueryConsumerOffset           = 14
	ReqUpdateConsumerOffset          = 15
	ReqUpdateAndCreateTopic          = 17
	ReqSearchOffsetByTimestamp       = 29
	ReqGetMaxOffset                  = 30
	ReqGetMinOffset                  = 31
	ReqViewMessageByID               = 33
	ReqHeartBeat                     = 34
	ReqUnregisterClient              = 35
	ReqConsumerSendMsgBack           = 36
	ReqEndTransaction                = 37
	ReqGetConsumerListByGroup        = 38
	ReqCheckTransactionState         = 39
	ReqNotifyConsumerIDsChanged      = 40
	ReqLockBatchMQ                   = 41
	ReqUnlockBatchMQ                 = 42
	ReqRegisterBroker                = 103
	ReqUnregisterBroker              = 104
	ReqGetRouteInfoByTopic           = 105
	ReqGetBrokerClusterInfo          = 106
	ReqGetAllSubscriptionGroupConfig = 201
	ReqGetAllTopicListFromNameServer = 206
	ReqDeleteTopicInBroker           = 215
	ReqDeleteTopicInNameServer       = 216
	ReqResetConsumerClientOffset     = 220
	ReqGetConsumerStatusFromClient   = 221
	ReqGetConsumerRunningInfo        = 307
	ReqConsumeMessageDirectly        = 309
	ReqSendMessageV2                 = 310
	ReqSendBatchMessage              = 320
	ReqSendReplyMessage              = 324
	ReqSendReplyMessageV2            = 325
	ReqPushReplyMessageToClient      = 326
)

// Ferry's own request codes, above RocketMQ's.
const (
	// ReqInitProducerID starts a new epoch of an idempotent producer id
	// (fencing older instances) and returns its last sequence per queue.
	ReqInitProducerID = 30001
)

// Ferry's own response codes of idempotent sends.
const (
	// RespOutOfOrderSequence: the batch is not the next one of its
	// producer and queue (a gap, or a retry older than the broker keeps).
	RespOutOfOrderSequence = 30010
	// RespProducerFenced: a newer instance of the producer id has started.
	RespProducerFenced = 30011
)

// Response codes (Java RemotingSysResponseCode and ResponseCode).
const (
	RespSuccess                            = 0
	RespSystemError                        = 1
	RespSystemBusy                         = 2
	RespRequestCodeNotSupported            = 3
	RespTransactionFailed                  = 4
	RespFlushDiskTimeout                   = 10
	RespSlaveNotAvailable                  = 11
	RespFlushSlaveTimeout                  = 12
	RespMessageIllegal                     = 13
	RespServiceNotAvailable                = 14
	RespVersionNotSupported                = 15
	RespNoPermission                       = 16
	RespTopicNotExist                      = 17
	RespTopicExistAlready                  = 18
	RespPullNotFound                       = 19
	RespPullRetryImmediately               = 20
	RespPullOffsetMoved                    = 21
	RespQueryNotFound                      = 22
	RespSubscriptionParseFailed            = 23
	RespSubscriptionNotExist               = 24
	RespSubscriptionNotLatest              = 25
	RespSubscriptionGroupNotExist          = 26
	RespFilterDataNotExist                 = 27
	RespFilterDataNotLatest                = 28
	RespTransactionShouldCommit            = 200
	RespTransactionShouldRollback          = 201
	RespTransactionStateUnknow             = 202
	RespTransactionStateGroupWrong         = 203
	RespNoBuyerID                          = 204
	RespNotInCurrentUnit                   = 205
	RespConsumerNotOnline                  = 206
	RespConsumeMsgTimeout                  = 207
	RespNoMessage                          = 208
	RespUpdateAndCreateACLConfigFailed     = 209
	RespDeleteACLConfigFailed              = 210
	RespUpdateGlobalWhiteAddrsConfigFailed = 211
	RespFlowControl                        = 215
)

var requestNames = map[int16]string{
	ReqSendMessage: "SEND_MESSAGE", ReqPullMessage: "PULL_MESSAGE", ReqQueryMessage: "QUERY_MESSAGE",
	ReqQueryConsumerOffset: "QUERY_CONSUMER_OFFSET", ReqUpdateConsumerOffset: "UPDATE_CONSUMER_OFFSET",
	ReqUpdateAndCreateTopic: "UPDATE_AND_CREATE_TOPIC", ReqSearchOffsetByTimestamp: "SEARCH_OFFSET_BY_TIMESTAMP",
	ReqGetMaxOffset: "GET_MAX_OFFSET", ReqGetMinOffset: "GET_MIN_OFFSET", ReqViewMessageByID: "VIEW_MESSAGE_BY_ID",
	ReqHeartBeat: "HEART_BEAT", ReqUnregisterClient: "UNREGISTER_CLIENT",
	ReqConsumerSendMsgBack: "CONSUMER_SEND_MSG_BACK", ReqEndTransaction: "END_TRANSACTION",
	ReqGetConsumerListByGroup: "GET_CONSUMER_LIST_BY_GROUP", ReqCheckTransactionState: "CHECK_TRANSACTION_STATE",
	ReqNotifyConsumerIDsChanged: "NOTIFY_CONSUMER_IDS_CHANGED", ReqLockBatchMQ: "LOCK_BATCH_MQ",
	ReqUnlockBatchMQ: "UNLOCK_BATCH_MQ", ReqRegisterBroker: "REGISTER_BROKER",
	ReqUnregisterBroker: "UNREGISTER_BROKER", ReqGetRouteInfoByTopic: "GET_ROUTEINFO_BY_TOPIC",
	ReqGetBrokerClusterInfo:          "GET_BROKER_CLUSTER_INFO",
	ReqGetAllSubscriptionGroupConfig: "GET_ALL_SUBSCRIPTIONGROUP_CONFIG",
	ReqGetAllTopicListFromNameServer: "GET_ALL_TOPIC_LIST_FROM_NAMESERVER",
	ReqDeleteTopicInBroker:           "DELETE_TOPIC_IN_BROKER", ReqDeleteTopicInNameServer: "DELETE_TOPIC_IN_NAMESRV",
	ReqResetConsumerClientOffset:   "RESET_CONSUMER_CLIENT_OFFSET",
	ReqGetConsumerStatusFromClient: "GET_CONSUMER_STATUS_FROM_CLIENT",
	ReqGetConsumerRunningInfo:      "GET_CONSUMER_RUNNING_INFO", ReqConsumeMessageDirectly: "CONSUME_MESSAGE_DIRECTLY",
	ReqSendMessageV2: "SEND_MESSAGE_V2", ReqSendBatchMessage: "SEND_BATCH_MESSAGE",
	ReqSendReplyMessage: "SEND_REPLY_MESSAGE", ReqSendReplyMessageV2: "SEND_REPLY_MESSAGE_V2",
	ReqPushReplyMessageToClient: "PUSH_REPLY_MESSAGE_TO_CLIENT",
	ReqInitProducerID:           "INIT_PRODUCER_ID",
}

var responseNames = map[int16]string{
	RespSuccess: "SUCCESS", RespSystemError: "SYSTEM_ERROR", RespSystemBusy: "SYSTEM_BUSY",
	RespRequestCodeNotSupported: "REQUEST_CODE_NOT_SUPPORTED", RespTransactionFailed: "TRANSACTION_FAILED",
	RespFlushDiskTimeout: "FLUSH_DISK_TIMEOUT", RespSlaveNotAvailable: "SLAVE_NOT_AVAILABLE",
	RespFlushSlaveTimeout: "FLUSH_SLAVE_TIMEOUT", RespMessageIllegal: "MESSAGE_ILLEGAL",
	RespServiceNotAvailable: "SERVICE_NOT_AVAILABLE", RespVersionNotSupported: "VERSION_NOT_SUPPORTED",
	RespNoPermission: "NO_PERMISSION", RespTopicNotExist: "TOPIC_NOT_EXIST",
	RespTopicExistAlready: "TOPIC_EXIST_ALREADY", RespPullNotFound: "PULL_NOT_FOUND",
	RespPullRetryImmediately: "PULL_RETRY_IMMEDIATELY", RespPullOffsetMoved: "PULL_OFFSET_MOVED",
	RespQueryNotFound: "QUERY_NOT_FOUND", RespSubscriptionParseFailed: "SUBSCRIPTION_PARSE_FAILED",
	RespSubscriptionNotExist: "SUBSCRIPTION_NOT_EXIST", RespSubscriptionNotLatest: "SUBSCRIPTION_NOT_LATEST",
	RespSubscriptionGroupNotExist: "SUBSCRIPTION_GROUP_NOT_EXIST",
	RespFilterDataNotExist:        "FILTER_DATA_NOT_EXIST", RespFilterDataNotLatest: "FILTER_DATA_NOT_LATEST",
	RespTransactionShouldCommit:    "TRANSACTION_SHOULD_COMMIT",
	RespTransactionShouldRollback:  "TRANSACTION_SHOULD_ROLLBACK",
	RespTransactionStateUnknow:     "TRANSACTION_STATE_UNKNOW",
	RespTransactionStateGroupWrong: "TRANSACTION_STATE_GROUP_WRONG",
	RespNoBuyerID:                  "NO_BUYER_ID", RespNotInCurrentUnit: "NOT_IN_CURRENT_UNIT",
	RespConsumerNotOnline: "CONSUMER_NOT_ONLINE", RespConsumeMsgTimeout: "CONSUME_MSG_TIMEOUT",
	RespNoMessage:                          "NO_MESSAGE",
	RespUpdateAndCreateACLConfigFailed:     "UPDATE_AND_CREATE_ACL_CONFIG_FAILED",
	RespDeleteACLConfigFailed:              "DELETE_ACL_CONFIG_FAILED",
	RespUpdateGlobalWhiteAddrsConfigFailed: "UPDATE_GLOBAL_WHITE_ADDRS_CONFIG_FAILED",
	RespFlowControl:                        "FLOW_CONTROL",
	RespOutOfOrderSequence:                 "OUT_OF_ORDER_SEQUENCE",
	RespProducerFenced:                     "PRODUCER_FENCED",
}

// RequestName returns the Java name of a request code, or its number.
func RequestName(code int16) string {
	if n, ok := requestNames[code]; ok {
		return n
	}
	return strconv.Itoa(int(code))
}

// ResponseName returns the Java name of a response code, or its number.
func ResponseName(code int16) string {
	if n, ok := responseNames[code]; ok {
		return n
	}
	return strconv.Itoa(int(code))
}

// Permission bits of a topic or queue (Java PermName; part of the format).
const (
	PermInherit  = 1 << 0
	PermWrite    = 1 << 1
	PermRead     = 1 << 2
	PermPriority = 1 << 3
)

// PermReadable reports whether perm allows reading (subscribing).
func PermReadable(perm int32) bool { return perm&PermRead != 0 }

// PermWritable reports whether perm allows writing (publishing).
func PermWritable(perm int32) bool { return perm&PermWrite != 0 }

// PermInheritable reports whether perm carries the inherit bit.
func PermInheritable(perm int32) bool { return perm&PermInherit != 0 }

// PermString renders perm as Java does: "RWX" with "-" for missing bits.
func PermString(perm int32) string {
	b := []byte("---")
	if PermReadable(perm) {
		b[0] = 'R'
	}
	if PermWritable(perm) {
		b[1] = 'W'
	}
	if PermInheritable(perm) {
		b[2] = 'X'
	}
	return string(b)
}
