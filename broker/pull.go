package broker

import (
	"fmt"
	"strings"
	"time"

	"github.com/ferrymq/ferry/consumequeue"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// Pull request sysFlag bits (Java PullSysFlag).
const (
	pullCommitOffset = 1
	pullSuspend      = 2
	pullSubscription = 4
)

type pullRequest struct {
	group         string
	topic         string
	queueID       int32
	offset        int64
	maxMsgs       int
	sysFlag       int32
	commitOffset  int64
	suspend       time.Duration
	subscription  string
	expressionTyp string
	whichSlow     int64 // the group's whichBrokerWhenConsumeSlowly
}

func parsePull(req *remoting.Command) (pullRequest, error) {
	var p pullRequest
	var err error
	if p.group, err = req.String("consumerGroup"); err != nil {
		return p, err
	}
	if p.topic, err = req.String("topic"); err != nil {
		return p, err
	}
	if p.queueID, err = req.Int32("queueId"); err != nil {
		return p, err
	}
	if p.offset, err = req.Int64("queueOffset"); err != nil {
		return p, err
	}
	n, err := req.Int32Or("maxMsgNums", 0)
	if err != nil {
		return p, err
	}
	p.maxMsgs = int(n)
	if p.sysFlag, err = req.Int32Or("sysFlag", 0); err != nil {
		return p, err
	}
	if p.commitOffset, err = req.Int64Or("commitOffset", 0); err != nil {
		return p, err
	}
	ms, err := req.Int64Or("suspendTimeoutMillis", 0)
	if err != nil {
		return p, err
	}
	p.suspend = time.Duration(ms) * time.Millisecond
	p.subscription = req.StringOr("subscription", "")
	p.expressionTyp = req.StringOr("expressionType", remoting.ExpressionTypeTag)
	return p, nil
}

// tagFilter decides which consume-queue entries a pull returns.
type tagFilter struct {
	all   bool
	codes map[int64]bool
}

func (f tagFilter) match(code int64) bool { return f.all || f.codes[code] }

func filterOf(s *subscription) tagFilter {
	if s == nil || s.all {
		return tagFilter{all: true}
	}
	return tagFilter{codes: s.codes}
}

// splitTags parses a TAG expression "A || B".
func splitTags(expr string) []string {
	var out []string
	for _, t := range strings.Split(expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func tagsCode(tag string) int64 { return consumequeue.TagsCode(tag) }

func (ch *clientHandlers) handlePull(c *remoting.Conn, req *remoting.Command) {
	p, err := parsePull(req)
	if err != nil {
		reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp, filter, hold := ch.pullPrepare(&p, req)
	if resp != nil {
		_ = c.Reply(resp)
		return
	}
	resp, empty := ch.b.reader.pullOnce(req, &p, filter)
	if !empty || !hold {
		_ = c.Reply(resp)
		return
	}
	// Nothing there: hold the request until the dispatcher appends to this
	// queue or the suspend time ends (long polling; see hold.go).
	ch.b.holds.holdPull(c, req, p, filter)
}

// pullPrepare validates a pull. It returns an immediate response for an
// error, or the tag filter and whether the request may be held.
func (ch *clientHandlers) pullPrepare(p *pullRequest, req *remoting.Command) (*remoting.Command, tagFilter, bool) {
	fail := func(code int16, format string, args ...any) (*remoting.Command, tagFilter, bool) {
		return remoting.NewResponse(req, code, fmt.Sprintf(format, args...)), tagFilter{}, false
	}
	gc, ok := ch.b.groups.get(p.group)
	switch {
	case ok:
	case p.group == protocol.ToolsConsumerGroup:
		// Tools read without a group of their own: nothing is stored.
		gc = DefaultGroupConfig(p.group, ch.b.c().RetryMaxTimes)
	default:
		if !ch.b.c().AutoCreateGroup {
			return fail(protocol.RespSubscriptionGroupNotExist, "subscription group [%s] does not exist", p.group)
		}
		gc = DefaultGroupConfig(p.group, ch.b.c().RetryMaxTimes)
		// On a full disk the group is not stored (its record would not
		// fit in the log), but reads go on with its default config.
		if err := ch.b.groups.put(gc); err != nil && !ch.b.disk.fullNow() {
			return fail(protocol.RespSystemError, "%v", err)
		}
	}
	if !gc.ConsumeEnable {
		return fail(protocol.RespNoPermission, "subscription group no permission, %s", p.group)
	}
	p.whichSlow = gc.WhichBrokerWhenSlow
	if g, ok := strings.CutPrefix(p.topic, protocol.RetryTopicPrefix); ok && g == p.group {
		ch.b.retryReaders.pull(g)
	}
	tc, ok := ch.b.topics.get(p.topic)
	if !ok {
		return fail(protocol.RespTopicNotExist, "topic[%s] not exist, apply first please!", p.topic)
	}
	if !protocol.PermReadable(tc.Perm) {
		return fail(protocol.RespNoPermission, "the topic[%s] pulling message is forbidden", p.topic)
	}
	if p.queueID < 0 || p.queueID >= tc.ReadQueueNums {
		return fail(protocol.RespSystemError, "queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d]", p.queueID, p.topic, tc.ReadQueueNums)
	}
	var filter tagFilter
	if p.sysFlag&pullSubscription != 0 {
		if p.expressionTyp != "" && p.expressionTyp != remoting.ExpressionTypeTag {
			return fail(protocol.RespSubscriptionParseFailed, "expression type %s is not supported; use TAG", p.expressionTyp)
		}
		if p.subscription == "" || p.subscription == remoting.SubscribeAll {
			filter = tagFilter{all: true} // what newSubscription makes of it, without building one
		} else {
			filter = filterOf(newSubscription(remoting.SubscriptionData{Topic: p.topic, SubString: p.subscription}, time.Now()))
		}
	} else {
		sub, model := ch.b.clients.subscriptionOf(p.group, p.topic)
		if sub == nil {
			return fail(protocol.RespSubscriptionNotExist, "the consumer's subscription not exist, group: %s topic: %s", p.group, p.topic)
		}
		if sub.data.ExpressionType != "" && sub.data.ExpressionType != remoting.ExpressionTypeTag {
			return fail(protocol.RespSubscriptionParseFailed, "expression type %s is not supported; use TAG", sub.data.ExpressionType)
		}
		if model == remoting.MessageModelBroadcast && !gc.ConsumeBroadcastEnable {
			return fail(protocol.RespNoPermission, "the consumer group[%s] can not consume by broadcast way", p.group)
		}
		filter = filterOf(sub)
	}
	if p.sysFlag&pullCommitOffset != 0 && p.commitOffset >= 0 && p.group != protocol.ToolsConsumerGroup {
		ch.b.offsets.set(p.group, p.topic, p.queueID, p.commitOffset)
	}
	return nil, filter, p.sysFlag&pullSuspend != 0 && p.suspend > 0
}
