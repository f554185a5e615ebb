package remoting

import (
	"bytes"
	"errors"
	"testing"
)

// bodyRoundTrip decodes b as a T: a failure must be ErrBadBody; a success
// must encode, decode again and encode to the same bytes.
func bodyRoundTrip[T any](t *testing.T, b []byte, enc func(*T) ([]byte, error)) {
	t.Helper()
	var v T
	if err := DecodeBody(b, &v); err != nil {
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("%T: error %v does not wrap ErrBadBody", v, err)
		}
		return
	}
	e1, err := enc(&v)
	if err != nil {
		t.Fatalf("%T: encoding what was decoded: %v", v, err)
	}
	var v2 T
	if err := DecodeBody(e1, &v2); err != nil {
		t.Fatalf("%T: decoding its own encoding %s: %v", v, e1, err)
	}
	e2, err := enc(&v2)
	if err != nil || !bytes.Equal(e1, e2) {
		t.Fatalf("%T: encodings differ\n%s\n%s (%v)", v, e1, e2, err)
	}
}

// FuzzDecodeBodies feeds every JSON body Ferry decodes from a peer the
// same bytes.
func FuzzDecodeBodies(f *testing.F) {
	route, _ := (&TopicRouteData{QueueDatas: []QueueData{{BrokerName: "b", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas: []BrokerData{{Cluster: "c", BrokerName: "b", BrokerAddrs: map[int64]string{0: "127.0.0.1:10911"}}}}).Encode()
	reg, _ := (&RegisterBrokerBody{TopicConfigSerializeWrapper: TopicConfigSerializeWrapper{
		TopicConfigTable: map[string]TopicConfig{"T": {TopicName: "T", ReadQueueNums: 8, WriteQueueNums: 8, Perm: 6}},
		DataVersion:      DataVersion{Timestamp: 1, Counter: 2}}}).Encode()
	hb, _ := EncodeBody(&HeartbeatData{ClientID: "c@1", ConsumerDataSet: []ConsumerData{{GroupName: "g",
		SubscriptionDataSet: []SubscriptionData{{Topic: "T", SubString: "a||b", TagsSet: []string{"a", "b"}, CodeSet: CodeSet{97, 98}}}}}})
	for _, s := range [][]byte{route, reg, hb,
		[]byte(`{"consumerDataSet":[{"subscriptionDataSet":[{"codeSet":["97","-1"]}]}]}`),
		[]byte(`{"consumerIdList":["a","b"]}`), []byte(`{"lockOKMQSet":[{"topic":"T","brokerName":"b","queueId":1}]}`),
		[]byte(`{"mqSet":[{"topic":"T","queueId":3}],"consumerGroup":"g"}`), []byte(`{"topicList":["T"]}`),
		[]byte(`{"brokerAddrTable":{"b":{"brokerAddrs":{"0":"x"}}},"clusterAddrTable":{"c":["b"]}}`),
		[]byte(`null`), []byte(`[`), []byte(`{"codeSet":[1e3]}`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeTopicRouteData(b); err == nil {
			if _, err := r.Encode(); err != nil {
				t.Fatalf("route: %v", err)
			}
		} else if !errors.Is(err, ErrBadBody) {
			t.Fatalf("DecodeTopicRouteData: %v", err)
		}
		bodyRoundTrip(t, b, (*TopicRouteData).Encode)
		bodyRoundTrip(t, b, (*RegisterBrokerBody).Encode)
		bodyRoundTrip(t, b, (*ClusterInfo).Encode)
		bodyRoundTrip(t, b, (*TopicList).Encode)
		bodyRoundTrip(t, b, (*ConsumerListBody).Encode)
		bodyRoundTrip(t, b, (*LockBatchResponseBody).Encode)
		bodyRoundTrip(t, b, func(v *HeartbeatData) ([]byte, error) { return EncodeBody(v) })
		bodyRoundTrip(t, b, func(v *LockBatchRequestBody) ([]byte, error) { return EncodeBody(v) })
	})
}
