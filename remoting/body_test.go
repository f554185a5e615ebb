package remoting

import (
	"reflect"
	"testing"
)

func TestBodiesRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		v     interface{ encode() ([]byte, error) }
		reEnc string // "" = same as in
	}{
		{"route", `{"queueDatas":[{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSysFlag":0}],` +
			`"brokerDatas":[{"cluster":"DefaultCluster","brokerName":"broker-a","brokerAddrs":{"0":"10.0.0.5:10911"}}],"filterServerTable":{}}`,
			&routeBox{}, ""},
		{"route with order conf", `{"orderTopicConf":"broker-a:4","queueDatas":[],"brokerDatas":[],"filterServerTable":{}}`,
			&routeBox{}, ""},
		{"register", `{"topicConfigSerializeWrapper":{"topicConfigTable":{"TopicTest":{"topicName":"TopicTest","readQueueNums":4,"writeQueueNums":4,"perm":6,` +
			`"topicFilterType":"SINGLE_TAG","topicSysFlag":0,"order":false}},"dataVersion":{"timestamp":1700000000000,"counter":3}},"filterServerList":[]}`,
			&registerBox{}, ""},
		{"heartbeat consumer (Go client)", `{"clientID":"192.0.2.2@c1","producerDataSet":[],` +
			`"consumerDataSet":[{"groupName":"cg1","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",` +
			`"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[` +
			`{"classFilterMode":false,"topic":"%RETRY%cg1","subString":"*","tagsSet":[],"codeSet":[],"subVersion":1795397011528376520,"expressionType":"TAG"},` +
			`{"classFilterMode":false,"topic":"TopicTest","subString":"TagA || TagB","tagsSet":["TagA","TagB"],"codeSet":["2598919","2598920"],"subVersion":1795397011528364172,"expressionType":"TAG"}],` +
			`"unitMode":false}]}`,
			&heartbeatBox{},
			// codeSet re-encoded as numbers, as Java writes it.
			`{"clientID":"192.0.2.2@c1","producerDataSet":[],` +
				`"consumerDataSet":[{"groupName":"cg1","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",` +
				`"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","subscriptionDataSet":[` +
				`{"classFilterMode":false,"topic":"%RETRY%cg1","subString":"*","tagsSet":[],"codeSet":[],"subVersion":1795397011528376520,"expressionType":"TAG"},` +
				`{"classFilterMode":false,"topic":"TopicTest","subString":"TagA || TagB","tagsSet":["TagA","TagB"],"codeSet":[2598919,2598920],"subVersion":1795397011528364172,"expressionType":"TAG"}],` +
				`"unitMode":false}]}`},
		{"heartbeat producer", `{"clientID":"192.0.2.2@p1","producerDataSet":[{"groupName":"pg"}],"consumerDataSet":[]}`, &heartbeatBox{}, ""},
		{"heartbeat java codeSet", `{"clientID":"x@1","producerDataSet":[],"consumerDataSet":[{"groupName":"g","consumeType":"CONSUME_PASSIVELY",` +
			`"messageModel":"CLUSTERING","consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","subscriptionDataSet":[{"classFilterMode":false,` +
			`"topic":"T","subString":"A","tagsSet":["A"],"codeSet":[65],"subVersion":1,"expressionType":"TAG"}],"unitMode":false}]}`, &heartbeatBox{}, ""},
		{"lock request", `{"consumerGroup":"cg2","clientId":"192.0.2.2@c2","mqSet":[{"topic":"TopicTest","brokerName":"broker-a","queueId":0}]}`,
			&lockReqBox{}, ""},
		{"unlock request", `{"consumerGroup":"cg2","clientId":"192.0.2.2@c2","mqSet":[{"topic":"TopicTest","brokerName":"broker-a","queueId":0},` +
			`{"topic":"TopicTest","brokerName":"broker-a","queueId":1},{"topic":"%RETRY%cg2","brokerName":"broker-a","queueId":0}]}`,
			&lockReqBox{}, ""},
		{"lock response", `{"lockOKMQSet":[{"topic":"TopicTest","brokerName":"broker-a","queueId":3}]}`, &lockRespBox{}, ""},
		{"consumer list", `{"consumerIdList":["192.0.2.2@c1","192.0.2.3@c1"]}`, &consumerListBox{}, ""},
		{"topic list", `{"topicList":["TBW102","TopicTest"]}`, &topicListBox{}, ""},
		{"cluster info", `{"brokerAddrTable":{"broker-a":{"cluster":"DefaultCluster","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"}}},` +
			`"clusterAddrTable":{"DefaultCluster":["broker-a"]}}`, &clusterBox{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := DecodeBody([]byte(tc.in), tc.v); err != nil {
				t.Fatal(err)
			}
			out, err := tc.v.encode()
			if err != nil {
				t.Fatal(err)
			}
			want := tc.reEnc
			if want == "" {
				want = tc.in
			}
			if string(out) != want {
				t.Fatalf("re-encoded:\n got %s\nwant %s", out, want)
			}
		})
	}
}

type routeBox struct{ TopicRouteData }

func (b *routeBox) encode() ([]byte, error) { return b.Encode() }

type registerBox struct{ RegisterBrokerBody }

func (b *registerBox) encode() ([]byte, error) { return b.Encode() }

type heartbeatBox struct{ HeartbeatData }

func (b *heartbeatBox) encode() ([]byte, error) { return EncodeBody(&b.HeartbeatData) }

type lockReqBox struct{ LockBatchRequestBody }

func (b *lockReqBox) encode() ([]byte, error) { return EncodeBody(&b.LockBatchRequestBody) }

type lockRespBox struct{ LockBatchResponseBody }

func (b *lockRespBox) encode() ([]byte, error) { return b.Encode() }

type consumerListBox struct{ ConsumerListBody }

func (b *consumerListBox) encode() ([]byte, error) { return b.Encode() }

type topicListBox struct{ TopicList }

func (b *topicListBox) encode() ([]byte, error) { return b.Encode() }

type clusterBox struct{ ClusterInfo }

func (b *clusterBox) encode() ([]byte, error) { return b.Encode() }

func TestEmptyBodiesNeverNull(t *testing.T) {
	for name, tc := range map[string]struct {
		enc  func() ([]byte, error)
		want string
	}{
		"route":    {(&TopicRouteData{BrokerDatas: []BrokerData{{Cluster: "c", BrokerName: "b"}}}).Encode, `{"queueDatas":[],"brokerDatas":[{"cluster":"c","brokerName":"b","brokerAddrs":{}}],"filterServerTable":{}}`},
		"register": {(&RegisterBrokerBody{}).Encode, `{"topicConfigSerializeWrapper":{"topicConfigTable":{},"dataVersion":{"timestamp":0,"counter":0}},"filterServerList":[]}`},
		"cluster":  {(&ClusterInfo{}).Encode, `{"brokerAddrTable":{},"clusterAddrTable":{}}`},
		"topics":   {(&TopicList{}).Encode, `{"topicList":[]}`},
		"lock":     {(&LockBatchResponseBody{}).Encode, `{"lockOKMQSet":[]}`},
		"ids":      {(&ConsumerListBody{}).Encode, `{"consumerIdList":[]}`},
	} {
		got, err := tc.enc()
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %s (%v), want %s", name, got, err, tc.want)
		}
	}
}

func TestHeartbeatCodeSetForms(t *testing.T) {
	var hb HeartbeatData
	in := `{"clientID":"c","consumerDataSet":[{"subscriptionDataSet":[{"codeSet":["-5",7,"2147483648"]}]}]}`
	if err := DecodeBody([]byte(in), &hb); err != nil {
		t.Fatal(err)
	}
	if got := hb.ConsumerDataSet[0].SubscriptionDataSet[0].CodeSet; !reflect.DeepEqual(got, CodeSet{-5, 7, 2147483648}) {
		t.Fatal(got)
	}
	if err := DecodeBody([]byte(`{"consumerDataSet":[{"subscriptionDataSet":[{"codeSet":["x"]}]}]}`), &hb); err == nil {
		t.Fatal("bad codeSet accepted")
	}
}

func TestBodyCRC32(t *testing.T) {
	// java.util.zip.CRC32("123456789") = 0xCBF43926; masked to 31 bits.
	if got := BodyCRC32([]byte("123456789")); got != 0x4BF43926 {
		t.Fatalf("%x", got)
	}
}

// TestRegisterHeaderHTTPAddr: ferryHttpAddr goes out only when set and is
// read back; a header without it (RocketMQ's brokers) parses as before.
func TestRegisterHeaderHTTPAddr(t *testing.T) {
	h := RegisterBrokerHeader{BrokerName: "a", BrokerAddr: "10.0.0.1:10911", ClusterName: "C", HTTPAddr: "10.0.0.1:8080"}
	got, err := ParseRegisterBrokerHeader(NewRequest(103, h.Ext(), nil))
	if err != nil || got.HTTPAddr != "10.0.0.1:8080" || got.BrokerAddr != h.BrokerAddr {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	h.HTTPAddr = ""
	if _, ok := h.Ext()["ferryHttpAddr"]; ok {
		t.Fatal("an empty HTTP address is sent")
	}
	if got, err := ParseRegisterBrokerHeader(NewRequest(103, h.Ext(), nil)); err != nil || got.HTTPAddr != "" {
		t.Fatalf("parsed %+v, %v", got, err)
	}
}
