package acl

import (
	"fmt"
	"strings"

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

// Request codes the table knows beyond those of package remoting (Java
// RequestCode numbers, and Ferry's own from 1001).
const (
	codeGetAllTopicConfig       = 21
	codeUpdateBrokerConfig      = 25
	codeGetBrokerConfig         = 26
	codeGetBrokerRuntimeInfo    = 28
	codeUpdateAndCreateGroup    = 200
	codeGetTopicStatsInfo       = 202
	codeGetConsumerConnList     = 203
	codeDeleteSubscriptionGroup = 207
	codeGetConsumeStats         = 208
	codeResetOffset             = 222
	codeFerryDLQList            = 1001
	codeFerryDLQResend          = 1002
	codeFerryDrain              = 1003
	codeFerryUndrain            = 1004
	codeFerryGroupList          = 1005
	codeFerryTopicStats         = 1006
)

func field(name string, perm Perm) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		return append(dst, TopicResource(req.ExtFields[name], perm)), nil
	}
}

func groupField(name string, perm Perm) func(*remoting.Command, []Resource) ([]Resource, error) {
	return func(req *remoting.Command, dst []Resource) ([]Resource, error) {
		return append(dst, GroupResource(req.ExtFields[name], perm)), nil
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
		r := TopicResource(req.ExtFields[name], Pub)
		if r.Group {
			r.Perm = Sub
		}
		return append(dst, r), nil
	}
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

func unregisterClient(req *remoting.Command, dst []Resource) ([]Resource, error) {
	if g := req.ExtFields["consumerGroup"]; g != "" {
		dst = append(dst, GroupResource(g, Sub))
	}
	return dst, nil
}

// table maps every request code Ferry's broker and name server serve to
// what it needs; the package doc shows it. Codes not in it need an admin
// account.
var table = map[int16]rule{
	remoting.ReqSendMessage:             {levelRes, sendTo("topic")},
	remoting.ReqSendMessageV2:           {levelRes, sendTo("b")},
	remoting.ReqSendBatchMessage:        {levelRes, sendTo("b")},
	remoting.ReqPullMessage:             {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	remoting.ReqQueryMessage:            {levelRes, field("topic", Sub)},
	remoting.ReqQueryConsumerOffset:     {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	remoting.ReqUpdateConsumerOffset:    {levelRes, both(field("topic", Sub), groupField("consumerGroup", Sub))},
	remoting.ReqGetMaxOffset:            {levelRes, field("topic", Any)},
	remoting.ReqGetMinOffset:            {levelRes, field("topic", Any)},
	remoting.ReqSearchOffsetByTimestamp: {levelRes, field("topic", Any)},
	remoting.ReqHeartBeat:               {levelRes, heartbeat},
	remoting.ReqUnregisterClient:        {levelRes, unregisterClient},
	remoting.ReqGetConsumerListByGroup:  {levelRes, groupField("consumerGroup", Sub)},
	remoting.ReqConsumerSendMsgBack:     {levelRes, both(groupField("group", Sub), field("originTopic", Pub))},
	remoting.ReqLockBatchMQ:             {levelRes, lockBatch},
	remoting.ReqUnlockBatchMQ:           {levelRes, lockBatch},
	codeFerryDLQList:                    {levelRes, groupField("group", Sub)},

	remoting.ReqGetRouteInfoByTopic:  {levelOpen, nil},
	remoting.ReqGetBrokerClusterInfo: {levelOpen, nil},

	remoting.ReqViewMessageByID:               {levelAdmin, nil},
	remoting.ReqUpdateAndCreateTopic:          {levelAdmin, nil},
	remoting.ReqDeleteTopicInBroker:           {levelAdmin, nil},
	remoting.ReqDeleteTopicInNameServer:       {levelAdmin, nil},
	remoting.ReqGetAllTopicListFromNameServer: {levelAdmin, nil},
	remoting.ReqGetAllSubscriptionGroupConfig: {levelAdmin, nil},
	codeGetAllTopicConfig:                     {levelAdmin, nil},
	codeUpdateBrokerConfig:                    {levelAdmin, nil},
	codeGetBrokerConfig:                       {levelAdmin, nil},
	codeGetBrokerRuntimeInfo:                  {levelAdmin, nil},
	codeUpdateAndCreateGroup:                  {levelAdmin, nil},
	codeGetTopicStatsInfo:                     {levelAdmin, nil},
	codeGetConsumerConnList:                   {levelAdmin, nil},
	codeDeleteSubscriptionGroup:               {levelAdmin, nil},
	codeGetConsumeStats:                       {levelAdmin, nil},
	codeResetOffset:                           {levelAdmin, nil},
	codeFerryDLQResend:                        {levelAdmin, nil},
	codeFerryDrain:                            {levelAdmin, nil},
	codeFerryUndrain:                          {levelAdmin, nil},
	codeFerryGroupList:                        {levelAdmin, nil},
	codeFerryTopicStats:                       {levelAdmin, nil},

	remoting.ReqRegisterBroker:   {levelCluster, nil},
	remoting.ReqUnregisterBroker: {levelCluster, nil},
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
