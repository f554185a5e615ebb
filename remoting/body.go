package remoting

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// JSON bodies of the requests and responses Ferry speaks. Field names and
// shapes are the Java ones (fastjson); Encode methods emit compact JSON with
// no whitespace, and never null where a client expects an array or object.

// EncodeBody marshals v compactly without HTML escaping.
func EncodeBody(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// DecodeBody unmarshals a JSON body into v, wrapping failures in ErrBadBody.
func DecodeBody(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %T: %w", ErrBadBody, v, err)
	}
	return nil
}

// QueueData is one broker's queues of a topic in a route.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int32  `json:"readQueueNums"`
	WriteQueueNums int32  `json:"writeQueueNums"`
	Perm           int32  `json:"perm"`
	TopicSysFlag   int32  `json:"topicSysFlag"`
}

// BrokerData is one logical broker and its addresses by broker id (0 is the
// master). BrokerAddrs is always written as an object, `{}` when empty,
// with quoted keys and no whitespace: the Go client's parser splits the raw
// text on ',' and ':' and depends on exactly that form.
type BrokerData struct {
	Cluster     string           `json:"cluster"`
	BrokerName  string           `json:"brokerName"`
	BrokerAddrs map[int64]string `json:"brokerAddrs"`
}

// MarshalJSON writes BrokerAddrs as {} when nil.
func (b BrokerData) MarshalJSON() ([]byte, error) {
	type plain BrokerData
	if b.BrokerAddrs == nil {
		b.BrokerAddrs = map[int64]string{}
	}
	return marshalNoEscape(plain(b))
}

func marshalNoEscape(v any) ([]byte, error) { return EncodeBody(v) }

// TopicRouteData is the GET_ROUTEINFO_BY_TOPIC answer.
type TopicRouteData struct {
	OrderTopicConf    string              `json:"orderTopicConf,omitempty"`
	QueueDatas        []QueueData         `json:"queueDatas"`
	BrokerDatas       []BrokerData        `json:"brokerDatas"`
	FilterServerTable map[string][]string `json:"filterServerTable"`
}

// Encode returns the compact JSON; nil slices and maps are written empty.
func (r *TopicRouteData) Encode() ([]byte, error) {
	c := *r
	if c.QueueDatas == nil {
		c.QueueDatas = []QueueData{}
	}
	if c.BrokerDatas == nil {
		c.BrokerDatas = []BrokerData{}
	}
	if c.FilterServerTable == nil {
		c.FilterServerTable = map[string][]string{}
	}
	return EncodeBody(&c)
}

// DecodeTopicRouteData parses a route body.
func DecodeTopicRouteData(b []byte) (*TopicRouteData, error) {
	var r TopicRouteData
	if err := DecodeBody(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DataVersion orders a broker's topic configuration snapshots.
type DataVersion struct {
	Timestamp int64 `json:"timestamp"`
	Counter   int64 `json:"counter"`
}

// TopicConfig is a broker's configuration of one topic.
type TopicConfig struct {
	TopicName       string `json:"topicName"`
	ReadQueueNums   int32  `json:"readQueueNums"`
	WriteQueueNums  int32  `json:"writeQueueNums"`
	Perm            int32  `json:"perm"`
	TopicFilterType string `json:"topicFilterType"`
	TopicSysFlag    int32  `json:"topicSysFlag"`
	Order           bool   `json:"order"`
	// DedupWindowMs is Ferry's dedup window of the topic (0: off).
	DedupWindowMs int64 `json:"dedupWindowMs,omitempty"`
}

// Topic filter types (Java TopicFilterType).
const (
	TopicFilterSingleTag = "SINGLE_TAG"
	TopicFilterMultiTag  = "MULTI_TAG"
)

// TopicConfigSerializeWrapper is a broker's topic table with its version.
type TopicConfigSerializeWrapper struct {
	TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
	DataVersion      DataVersion            `json:"dataVersion"`
}

// RegisterBrokerBody is the REGISTER_BROKER request body (uncompressed form).
type RegisterBrokerBody struct {
	TopicConfigSerializeWrapper TopicConfigSerializeWrapper `json:"topicConfigSerializeWrapper"`
	FilterServerList            []string                    `json:"filterServerList"`
}

// Encode returns the compact JSON; nil collections are written empty.
func (r *RegisterBrokerBody) Encode() ([]byte, error) {
	c := *r
	if c.TopicConfigSerializeWrapper.TopicConfigTable == nil {
		c.TopicConfigSerializeWrapper.TopicConfigTable = map[string]TopicConfig{}
	}
	if c.FilterServerList == nil {
		c.FilterServerList = []string{}
	}
	return EncodeBody(&c)
}

// ClusterInfo is the GET_BROKER_CLUSTER_INFO answer: brokers by name and
// broker names by cluster.
type ClusterInfo struct {
	BrokerAddrTable  map[string]BrokerData `json:"brokerAddrTable"`
	ClusterAddrTable map[string][]string   `json:"clusterAddrTable"`
	// HTTPAddrs is Ferry's own field: broker address → the HTTP address
	// it registered ("ferryHttpAddr"), for brokers that serve HTTP.
	// RocketMQ's clients ignore it.
	HTTPAddrs map[string]string `json:"ferryHttpAddrs,omitempty"`
}

// Encode returns the compact JSON; nil maps are written empty.
func (c *ClusterInfo) Encode() ([]byte, error) {
	d := *c
	if d.BrokerAddrTable == nil {
		d.BrokerAddrTable = map[string]BrokerData{}
	}
	if d.ClusterAddrTable == nil {
		d.ClusterAddrTable = map[string][]string{}
	}
	return EncodeBody(&d)
}

// TopicList is the GET_ALL_TOPIC_LIST_FROM_NAMESERVER answer.
type TopicList struct {
	TopicList  []string `json:"topicList"`
	BrokerAddr string   `json:"brokerAddr,omitempty"`
}

// Encode returns the compact JSON; a nil list is written [].
func (t *TopicList) Encode() ([]byte, error) {
	d := *t
	if d.TopicList == nil {
		d.TopicList = []string{}
	}
	return EncodeBody(&d)
}

// HeartbeatData is the HEART_BEAT request body.
type HeartbeatData struct {
	ClientID        string         `json:"clientID"`
	ProducerDataSet []ProducerData `json:"producerDataSet"`
	ConsumerDataSet []ConsumerData `json:"consumerDataSet"`
}

// ProducerData names a producer group of a client.
type ProducerData struct {
	GroupName string `json:"groupName"`
}

// ConsumerData is one consumer group of a client and its subscriptions.
type ConsumerData struct {
	GroupName           string             `json:"groupName"`
	ConsumeType         string             `json:"consumeType"`
	MessageModel        string             `json:"messageModel"`
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []SubscriptionData `json:"subscriptionDataSet"`
	UnitMode            bool               `json:"unitMode"`
}

// Values of ConsumerData fields (Java enum names).
const (
	ConsumeActively        = "CONSUME_ACTIVELY"
	ConsumePassively       = "CONSUME_PASSIVELY"
	MessageModelClustering = "CLUSTERING"
	MessageModelBroadcast  = "BROADCASTING"
	ConsumeFromLastOffset  = "CONSUME_FROM_LAST_OFFSET"
	ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET"
	ConsumeFromTimestamp   = "CONSUME_FROM_TIMESTAMP"
	ExpressionTypeTag      = "TAG"
	ExpressionTypeSQL92    = "SQL92"
	SubscribeAll           = "*"
)

// SubscriptionData is one topic subscription of a consumer group.
type SubscriptionData struct {
	ClassFilterMode bool     `json:"classFilterMode"`
	Topic           string   `json:"topic"`
	SubString       string   `json:"subString"`
	TagsSet         []string `json:"tagsSet"`
	CodeSet         CodeSet  `json:"codeSet"`
	SubVersion      int64    `json:"subVersion"`
	ExpressionType  string   `json:"expressionType"`
}

// CodeSet holds tag hash codes. The Go client sends them as JSON strings,
// Java as numbers; both decode. It encodes as numbers, as Java does.
type CodeSet []int64

// UnmarshalJSON accepts an array of numbers and/or numeric strings.
func (s *CodeSet) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(CodeSet, 0, len(raw))
	for _, r := range raw {
		text := r
		if len(r) > 0 && r[0] == '"' {
			var str string
			if err := json.Unmarshal(r, &str); err != nil {
				return err
			}
			text = []byte(str)
		}
		v, err := strconv.ParseInt(string(text), 10, 64)
		if err != nil {
			return fmt.Errorf("codeSet entry %s is not an integer", r)
		}
		out = append(out, v)
	}
	*s = out
	return nil
}

// MarshalJSON writes numbers; nil is written [].
func (s CodeSet) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, v := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, ']'), nil
}

// ConsumerListBody is the GET_CONSUMER_LIST_BY_GROUP answer.
type ConsumerListBody struct {
	ConsumerIDList []string `json:"consumerIdList"`
}

// Encode returns the compact JSON; a nil list is written [].
func (c *ConsumerListBody) Encode() ([]byte, error) {
	d := *c
	if d.ConsumerIDList == nil {
		d.ConsumerIDList = []string{}
	}
	return EncodeBody(&d)
}

// MessageQueue identifies one queue of a topic on one broker.
type MessageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

// LockBatchRequestBody is the LOCK_BATCH_MQ / UNLOCK_BATCH_MQ request body.
type LockBatchRequestBody struct {
	ConsumerGroup  string         `json:"consumerGroup"`
	ClientID       string         `json:"clientId"`
	OnlyThisBroker bool           `json:"onlyThisBroker,omitempty"`
	MQSet          []MessageQueue `json:"mqSet"`
}

// LockBatchResponseBody is the LOCK_BATCH_MQ answer: the queues the caller
// now holds.
type LockBatchResponseBody struct {
	LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
}

// Encode returns the compact JSON; a nil set is written [].
func (l *LockBatchResponseBody) Encode() ([]byte, error) {
	d := *l
	if d.LockOKMQSet == nil {
		d.LockOKMQSet = []MessageQueue{}
	}
	return EncodeBody(&d)
}
