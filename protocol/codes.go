package protocol

import "strconv"

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

// Admin and operator request codes (Java RequestCode numbers) and Ferry's
// own, in the 1000 range (RocketMQ has no request for these).
const (
	ReqGetAllTopicConfig       = 21
	ReqUpdateBrokerConfig      = 25
	ReqGetBrokerConfig         = 26
	ReqGetBrokerRuntimeInfo    = 28
	ReqUpdateAndCreateGroup    = 200
	ReqGetTopicStatsInfo       = 202
	ReqGetConsumerConnList     = 203
	ReqDeleteSubscriptionGroup = 207
	ReqGetConsumeStats         = 208
	ReqResetOffset             = 222
	ReqFerryDLQList            = 1001
	ReqFerryDLQResend          = 1002
	ReqFerryDrain              = 1003
	ReqFerryUndrain            = 1004
	ReqFerryGroupList          = 1005
	ReqFerryTopicStats         = 1006
	ReqFerryTxList             = 1007
	ReqFerryProducerList       = 1008

	// ReqFerrySendMulti stores messages for many queues, of one or many
	// topics, in one request with one result per message (multi.go and the
	// package doc give the layout).
	ReqFerrySendMulti = 1020
)

// The control plane's request and response codes, served by the name
// servers that run it (package controller documents the bodies).
const (
	ReqControllerHeartbeat   = 1101
	ReqControllerGetState    = 1102
	ReqControllerAlterInSync = 1103
	ReqControllerElect       = 1104

	RespControllerNotLeader = 1110
	RespControllerRefused   = 1111
)

// Ferry's own request and response codes of idempotent producing, above
// RocketMQ's.
const (
	// ReqInitProducerID starts a new epoch of an idempotent producer id
	// (fencing older instances) and returns its last sequence per queue.
	ReqInitProducerID = 30001

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
	ReqGetAllTopicConfig:        "GET_ALL_TOPIC_CONFIG", ReqUpdateBrokerConfig: "UPDATE_BROKER_CONFIG",
	ReqGetBrokerConfig: "GET_BROKER_CONFIG", ReqGetBrokerRuntimeInfo: "GET_BROKER_RUNTIME_INFO",
	ReqUpdateAndCreateGroup: "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP", ReqGetTopicStatsInfo: "GET_TOPIC_STATS_INFO",
	ReqGetConsumerConnList: "GET_CONSUMER_CONNECTION_LIST", ReqDeleteSubscriptionGroup: "DELETE_SUBSCRIPTIONGROUP",
	ReqGetConsumeStats: "GET_CONSUME_STATS", ReqResetOffset: "INVOKE_BROKER_TO_RESET_OFFSET",
	ReqFerryDLQList: "FERRY_DLQ_LIST", ReqFerryDLQResend: "FERRY_DLQ_RESEND", ReqFerryDrain: "FERRY_DRAIN",
	ReqFerryUndrain: "FERRY_UNDRAIN", ReqFerryGroupList: "FERRY_GROUP_LIST", ReqFerryTopicStats: "FERRY_TOPIC_STATS",
	ReqFerryTxList: "FERRY_TX_LIST", ReqFerryProducerList: "FERRY_PRODUCER_LIST",
	ReqFerrySendMulti: "FERRY_SEND_MULTI",
	ReqFerryAuth:      "FERRY_AUTH",
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
