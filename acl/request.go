package acl

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferrymq/ferry/protocol"

	"github.com/ferrymq/ferry/remoting"
)

// Resource is a topic or a group a request touches, with the permission it
// needs there. A group's resource is its retry topic, %RETRY%<group>; Name
// holds the group without the prefix when Group is set.
type Resource struct {
	Name  string
	Group bool
	Perm  Perm
}

func (r Resource) String() string {
	kind := "topic"
	if r.Group {
		kind = "group"
	}
	return r.Perm.String() + " on " + kind + " " + r.Name
}

// TopicResource is topic with perm; a retry topic names its group.
func TopicResource(topic string, perm Perm) Resource {
	if g, ok := strings.CutPrefix(topic, RetryPrefix); ok {
		return Resource{Name: g, Group: true, Perm: perm}
	}
	return Resource{Name: topic, Perm: perm}
}

// GroupResource is group with perm.
func GroupResource(group string, perm Perm) Resource {
	return Resource{Name: group, Group: true, Perm: perm}
}

// Need is what a request needs: nothing (Open), an admin account, the
// cluster secret, or permissions on resources (any signed account when
// none).
type Need struct {
	Open    bool
	Admin   bool
	Cluster bool
	// Res lists the resources; it may share storage with the Need it came
	// from.
	Res []Resource
}

// Access levels of the permission table.
const (
	levelOpen    = "open"    // no check: what RocketMQ name servers serve to anyone
	levelRes     = "res"     // permissions on the request's resources
	levelAdmin   = "admin"   // an admin account
	levelCluster = "cluster" // the cluster secret
)

// rule is one row of the permission table.
type rule struct {
	level string
	// res adds the request's resources (levelRes only).
	res func(req *remoting.Command, dst []Resource) ([]Resource, error)
}

func field(name string, perm Perm) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		return append(dst, TopicResource(req.StringOr(name, ""), perm)), nil
	}
}

func groupField(name string, perm Perm) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		return append(dst, GroupResource(req.StringOr(name, ""), perm)), nil
	}
}

func both(fs ...func(*remoting.Command, []Resource) ([]Resource, error)) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		var err error
		for _, f := range fs {
			if dst, err = f(req, dst); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
}

// sendTo is a send's need: PUB on the topic, or SUB on the group when the
// topic is a group's retry topic (a consumer sending back).
func sendTo(name string) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		r := TopicResource(req.StringOr(name, ""), Pub)
		if r.Group {
			r.Perm = Sub
		}
		return append(dst, r), nil
	}
}

// sendMulti needs PUB on every topic of a multi-queue batch (each topic
// once; SUB on the group for a group's retry topic, as sendTo) and is
// refused whole when its body is malformed.
func sendMulti(req *remoting.Command, dst []Resource) ([]Resource, error) {
	entries, err := protocol.DecodeMulti(req.Body, nil)
	if err != nil {
		return dst, err
	}
	first := len(dst)
	for _, e := range entries {
		r := TopicResource(e.Topic, Pub)
		if r.Group {
			r.Perm = Sub
		}
		if !slices.Contains(dst[first:], r) {
			dst = append(dst, r)
		}
	}
	return dst, nil
}

func heartbeat(req *remoting.Command, dst []Resource) ([]Resource, error) {
	var hb remoting.HeartbeatData
	if err := remoting.DecodeBody(req.Body, &hb); err != nil {
		return dst, fmt.Errorf("malformed heartbeat body: %v", err)
	}
	for _, cd := range hb.ConsumerDataSet {
		dst = append(dst, GroupResource(cd.GroupName, Sub))
		for _, sd := range cd.SubscriptionDataSet {
			dst = append(dst, TopicResource(sd.Topic, Sub))
		}
	}
	return dst, nil
}

func lockBatch(req *remoting.Command, dst []Resource) ([]Resource, error) {
	var body remoting.LockBatchRequestBody
	if err := remoting.DecodeBody(req.Body, &body); err != nil {
		return dst, fmt.Errorf("malformed lock body: %v", err)
	}
	dst = append(dst, GroupResource(body.ConsumerGroup, Sub))
	for _, mq := range body.MQSet {
		dst = append(dst, TopicResource(mq.Topic, Sub))
	}
	return dst, nil
}

// endTransaction needs PUB on the half's real topic when the header names
// it ("topic"); the official clients' header does not, and then any signed
// account may send it: the broker checks the producer group and message
// id against the half it names.
func endTransaction(req *remoting.Command, dst []Resource) ([]Resource, error) {
	if t := req.StringOr("topic", ""); t != "" {
		dst = append(dst, TopicResource(t, Pub))
	}
	return dst, nil
}

func unregisterClient(req *remoting.Command, dst []Resource) ([]Resource, error) {
	if g := req.StringOr("consumerGroup", ""); g != "" {
		dst = append(dst, GroupResource(g, Sub))
	}
	return dst, nil
}

// table maps every request code Ferry's broker and name server serve to
// what it needs; the package doc shows it. Codes not in it need an admin
// account.
var table = map[int16]rule{
	protocol.ReqSendMessage:             {levelRes, sendTo("topic")},
	protocol.ReqSendMessageV2:           {levelRes, sendTo("b")},
	protocol.ReqSendBatchMessage:        {levelRes, sendTo("b")},
	protocol.ReqPullMessage:             {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	protocol.ReqQueryMessage:            {levelRes, field("topic", Sub)},
	protocol.ReqQueryConsumerOffset:     {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	protocol.ReqUpdateConsumerOffset:    {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	protocol.ReqGetMaxOffset:            {levelRes, field("topic", Any)},
	protocol.ReqGetMinOffset:            {levelRes, field("topic", Any)},
	protocol.ReqSearchOffsetByTimestamp: {levelRes, field("topic", Any)},
	protocol.ReqHeartBeat:               {levelRes, heartbeat},
	protocol.ReqUnregisterClient:        {levelRes, unregisterClient},
	protocol.ReqEndTransaction:          {levelRes, endTransaction},
	protocol.ReqGetConsumerListByGroup:  {levelRes, groupField("consumerGroup", Sub)},
	protocol.ReqConsumerSendMsgBack:     {levelRes, both(groupField("group", Sub), field("originTopic", Pub))},
	protocol.ReqLockBatchMQ:             {levelRes, lockBatch},
	protocol.ReqUnlockBatchMQ:           {levelRes, lockBatch},
	protocol.ReqFerryDLQList:            {levelRes, groupField("group", Sub)},
	protocol.ReqFerrySendMulti:          {levelRes, sendMulti},

	// The connection handshake: the Guard serves it itself (connauth.go).
	protocol.ReqFerryAuth: {levelOpen, nil},

	protocol.ReqGetRouteInfoByTopic:  {levelOpen, nil},
	protocol.ReqGetBrokerClusterInfo: {levelOpen, nil},

	protocol.ReqViewMessageByID:               {levelAdmin, nil},
	protocol.ReqUpdateAndCreateTopic:          {levelAdmin, nil},
	protocol.ReqDeleteTopicInBroker:           {levelAdmin, nil},
	protocol.ReqDeleteTopicInNameServer:       {levelAdmin, nil},
	protocol.ReqGetAllTopicListFromNameServer: {levelAdmin, nil},
	protocol.ReqGetAllSubscriptionGroupConfig: {levelAdmin, nil},
	protocol.ReqGetAllTopicConfig:             {levelAdmin, nil},
	protocol.ReqUpdateBrokerConfig:            {levelAdmin, nil},
	protocol.ReqGetBrokerConfig:               {levelAdmin, nil},
	protocol.ReqGetBrokerRuntimeInfo:          {levelAdmin, nil},
	protocol.ReqUpdateAndCreateGroup:          {levelAdmin, nil},
	protocol.ReqGetTopicStatsInfo:             {levelAdmin, nil},
	protocol.ReqGetConsumerConnList:           {levelAdmin, nil},
	protocol.ReqDeleteSubscriptionGroup:       {levelAdmin, nil},
	protocol.ReqGetConsumeStats:               {levelAdmin, nil},
	protocol.ReqResetOffset:                   {levelAdmin, nil},
	protocol.ReqFerryDLQResend:                {levelAdmin, nil},
	protocol.ReqFerryDrain:                    {levelAdmin, nil},
	protocol.ReqFerryUndrain:                  {levelAdmin, nil},
	protocol.ReqFerryGroupList:                {levelAdmin, nil},
	protocol.ReqFerryTopicStats:               {levelAdmin, nil},
	protocol.ReqFerryTxList:                   {levelAdmin, nil},
	protocol.ReqFerryProducerList:             {levelAdmin, nil},

	protocol.ReqRegisterBroker:   {levelCluster, nil},
	protocol.ReqUnregisterBroker: {levelCluster, nil},

	// A producer id names no topic: any signed account may start an
	// epoch of one; its sends still need PUB on their topics.
	protocol.ReqInitProducerID: {levelRes, nil},

	protocol.ReqControllerHeartbeat:   {levelCluster, nil},
	protocol.ReqControllerAlterInSync: {levelCluster, nil},
	protocol.ReqControllerGetState:    {levelOpen, nil},
	protocol.ReqControllerElect:       {levelAdmin, nil},
}

// Known reports whether code has a row in the permission table.
func Known(code int16) bool {
	_, ok := table[code]
	return ok
}

// NeedOf returns what req needs. buf, when not nil, is reused for the
// resources. An unknown code needs an admin account; a body the table
// must read and cannot is an error.
func NeedOf(req *remoting.Command, buf []Resource) (Need, error) {
	r, ok := table[req.Code]
	if !ok {
		return Need{Admin: true}, nil
	}
	n := Need{Open: r.level == levelOpen, Admin: r.level == levelAdmin, Cluster: r.level == levelCluster, Res: buf[:0]}
	if r.res != nil {
		var err error
		n.Res, err = r.res(req, n.Res)
		return n, err
	}
	return n, nil
}
