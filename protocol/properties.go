package protocol

import (
	"bytes"
	"sort"
)

// Property names the broker and clients share (RocketMQ's MessageConst).
const (
	PropTags            = "TAGS"
	PropKeys            = "KEYS"
	PropUniqKey         = "UNIQ_KEY"
	PropDelayLevel      = "DELAY"
	PropTimerDeliverMS  = "TIMER_DELIVER_MS"
	PropTimerDelaySec   = "TIMER_DELAY_SEC"
	PropTimerDelayMS    = "TIMER_DELAY_MS"
	PropRealTopic       = "REAL_TOPIC"
	PropRealQueueID     = "REAL_QID"
	PropRetryTopic      = "RETRY_TOPIC"
	PropOriginMessageID = "ORIGIN_MESSAGE_ID"
	PropCluster         = "CLUSTER"
	PropWait            = "WAIT"
	PropMaxReconsume    = "MAX_RECONSUME_TIMES"
	PropShardingKey     = "SHARDING_KEY"
	PropTraceOn         = "TRACE_ON"
	PropMsgRegion       = "MSG_REGION"
	PropTransaction     = "TRAN_MSG"
	PropProducerGroup   = "PGROUP"
	PropMinOffset       = "MIN_OFFSET"
	PropMaxOffset       = "MAX_OFFSET"
	PropReconsumeTime   = "RECONSUME_TIME"
	PropConsumeStart    = "CONSUME_START_TIME"
	// PropTransactionCheckTimes counts the broker's check-backs of a half
	// message; PropTransactionID is the id a transactional send answers.
	PropTransactionCheckTimes = "TRANSACTION_CHECK_TIMES"
	PropTransactionID         = "__transactionId__"
)

// Transaction bits of a message's sysFlag (part of the format, RocketMQ's
// MessageSysFlag): a half message is stored PREPARED; the real message a
// commit writes carries COMMIT.
const (
	SysFlagTransactionMask     int32 = 0xC
	SysFlagTransactionPrepared int32 = 0x4
	SysFlagTransactionCommit   int32 = 0x8
	SysFlagTransactionRollback int32 = 0xC
)

// END_TRANSACTION's commitOrRollback values (the same numbers as the
// sysFlag bits); TransactionUnknown leaves the half open.
const (
	TransactionUnknown  = 0
	TransactionCommit   = 8
	TransactionRollback = 12
)

// PropTransactionOp names what an op record of the transaction op topic
// did to its half: one of the TransactionOp values (Ferry's own, part of
// the format: a restart rebuilds the open transactions from it).
const (
	PropTransactionOp     = "__TXOP"
	TransactionOpCommit   = "commit"
	TransactionOpRollback = "rollback"
	TransactionOpParked   = "parked"
	// TransactionOpTag is the tag of every op record (RocketMQ's "d").
	TransactionOpTag = "d"
)

// systemProperties are the property names RocketMQ and Ferry reserve
// (MessageConst): a producer may not set them as user properties.
var systemProperties = map[string]bool{
	PropTags: true, PropKeys: true, PropUniqKey: true, PropDelayLevel: true, PropTimerDeliverMS: true,
	PropTimerDelaySec: true, PropTimerDelayMS: true, PropRealTopic: true, PropRealQueueID: true,
	PropRetryTopic: true, PropOriginMessageID: true, PropCluster: true, PropWait: true,
	PropMaxReconsume: true, PropShardingKey: true, PropTraceOn: true, PropMsgRegion: true,
	PropTransaction: true, PropProducerGroup: true, PropMinOffset: true, PropMaxOffset: true,
	PropReconsumeTime: true, PropConsumeStart: true,
	"BUYER_ID": true, "TRANSFER_FLAG": true, "CORRECTION_FLAG": true, "MQ2_FLAG": true,
	"TRAN_PREPARED_QUEUE_OFFSET": true, PropTransactionCheckTimes: true,
	"CHECK_IMMUNITY_TIME_IN_SECONDS": true, "INSTANCE_ID": true, "__STARTDELIVERTIME": true,
	"TIMER_OUT_MS": true, "TIMER_ENQUEUE_MS": true, "TIMER_DEQUEUE_MS": true, "POP_CK": true,
	"1ST_POP_TIME": true, "DELAY_TIME_LEVEL": true, CRCProperty: true,
}

// IsSystemProperty reports whether name is reserved for the system.
func IsSystemProperty(name string) bool { return systemProperties[name] }

// Properties of an idempotent producer's messages (Ferry's own, part of
// the format: the broker rebuilds its producer state from them).
const (
	PropProducerID    = "__PID"    // the producer id the application keeps
	PropProducerEpoch = "__PEPOCH" // the epoch INIT_PRODUCER_ID granted
	PropProducerSeq   = "__PSEQ"   // this message's sequence in its queue
	// PropIdempotencyKey is a key the client gives (HTTP Idempotency-Key)
	// that a topic's dedup window deduplicates by instead of UNIQ_KEY.
	PropIdempotencyKey = "__IDEMKEY"
)

// propertyIndex returns the index in p where the item named key starts, or -1.
func propertyIndex(p []byte, key string) int {
	for i := 0; i < len(p); {
		end := bytes.IndexByte(p[i:], PropertySep)
		if end < 0 {
			end = len(p)
		} else {
			end += i
		}
		// The name ends at the item's first name separator, and key holds
		// none: comparing the prefix needs no second scan of the item.
		if item := p[i:end]; len(item) > len(key) && item[len(key)] == PropertyNameSep && string(item[:len(key)]) == key {
			return i
		}
		i = end + 1
	}
	return -1
}

// Property returns the value of key in wire-form properties p. Items without
// a name separator are skipped, as both RocketMQ clients do.
func Property(p []byte, key string) (string, bool) {
	i := propertyIndex(p, key)
	if i < 0 {
		return "", false
	}
	v := p[i+len(key)+1:]
	if end := bytes.IndexByte(v, PropertySep); end >= 0 {
		v = v[:end]
	}
	return string(v), true
}

// ParseProperties decodes wire-form properties into a map. Later duplicates
// win; the checksum property is left out.
func ParseProperties(p []byte) map[string]string {
	m := make(map[string]string)
	for _, item := range bytes.Split(p, []byte{PropertySep}) {
		sep := bytes.IndexByte(item, PropertyNameSep)
		if sep <= 0 {
			continue
		}
		k := string(item[:sep])
		if k == CRCProperty {
			continue
		}
		m[k] = string(item[sep+1:])
	}
	return m
}

// EncodeProperties encodes m in wire form with sorted keys and no trailing
// separator (the Java form). Names and values must not contain \x01 or \x02.
func EncodeProperties(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 2
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	for i, k := range keys {
		if i > 0 {
			b = append(b, PropertySep)
		}
		b = append(b, k...)
		b = append(b, PropertyNameSep)
		b = append(b, m[k]...)
	}
	return b
}

// AppendProperty appends the item k=v to wire-form properties p. Names
// and values must not contain \x01 or \x02.
func AppendProperty(p []byte, k, v string) []byte {
	if len(p) > 0 && p[len(p)-1] != PropertySep {
		p = append(p, PropertySep)
	}
	p = append(p, k...)
	p = append(p, PropertyNameSep)
	return append(p, v...)
}

// ValidPropertyText reports whether s can be stored as a property name or
// value (the separators cannot be escaped).
func ValidPropertyText(s string) bool {
	return !bytesContainsSep(s)
}

func bytesContainsSep(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == PropertyNameSep || s[i] == PropertySep {
			return true
		}
	}
	return false
}
