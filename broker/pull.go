package broker

import (
	"fmt"
	"strings"
	"sync"
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

func (b *Broker) handlePull(c *remoting.Conn, req *remoting.Command) {
	p, err := parsePull(req)
	if err != nil {
		b.reply(c, req, protocol.RespSystemError, err.Error())
		return
	}
	resp, filter, hold := b.pullPrepare(&p, req)
	if resp != nil {
		_ = c.Reply(resp)
		return
	}
	resp, empty := b.pullOnce(req, &p, filter)
	if !empty || !hold {
		_ = c.Reply(resp)
		return
	}
	// Nothing there: hold the request until the dispatcher appends to this
	// queue or the suspend time ends (long polling; see hold.go).
	b.holds.holdPull(c, req, p, filter)
}

// pullPrepare validates a pull. It returns an immediate response for an
// error, or the tag filter and whether the request may be held.
func (b *Broker) pullPrepare(p *pullRequest, req *remoting.Command) (*remoting.Command, tagFilter, bool) {
	fail := func(code int16, format string, args ...any) (*remoting.Command, tagFilter, bool) {
		return remoting.NewResponse(req, code, fmt.Sprintf(format, args...)), tagFilter{}, false
	}
	gc, ok := b.groups.get(p.group)
	switch {
	case ok:
	case p.group == protocol.ToolsConsumerGroup:
		// Tools read without a group of their own: nothing is stored.
		gc = DefaultGroupConfig(p.group, b.c().RetryMaxTimes)
	default:
		if !b.c().AutoCreateGroup {
			return fail(protocol.RespSubscriptionGroupNotExist, "subscription group [%s] does not exist", p.group)
		}
		gc = DefaultGroupConfig(p.group, b.c().RetryMaxTimes)
		// On a full disk the group is not stored (its record would not
		// fit in the log), but reads go on with its default config.
		if err := b.groups.put(gc); err != nil && !b.diskFullNow() {
			return fail(protocol.RespSystemError, "%v", err)
		}
	}
	if !gc.ConsumeEnable {
		return fail(protocol.RespNoPermission, "subscription group no permission, %s", p.group)
	}
	p.whichSlow = gc.WhichBrokerWhenSlow
	if g, ok := strings.CutPrefix(p.topic, protocol.RetryTopicPrefix); ok && g == p.group {
		b.retryReaders.pull(g)
	}
	tc, ok := b.topics.get(p.topic)
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
		sub, model := b.clients.subscriptionOf(p.group, p.topic)
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
		b.offsets.set(p.group, p.topic, p.queueID, p.commitOffset)
	}
	return nil, filter, p.sysFlag&pullSuspend != 0 && p.suspend > 0
}

var entryPool = sync.Pool{New: func() any { s := make([]consumequeue.Entry, 0, 64); return &s }}

// pullOnce answers a pull from what is there now. empty reports an answer
// that found nothing new at the end of the queue (PULL_NOT_FOUND), which a
// suspending request may wait on.
func (b *Broker) pullOnce(req *remoting.Command, p *pullRequest, filter tagFilter) (*remoting.Command, bool) {
	minOff := b.minOffset(p.topic, p.queueID)
	maxOff := b.cq.MaxOffset(p.topic, p.queueID)
	resp := remoting.NewResponse(req, protocol.RespSuccess, "")
	next := p.offset
	code := int16(protocol.RespSuccess)
	empty := false
	first := int64(-1) // commitlog offset of the first message read
	switch {
	case maxOff == 0:
		if p.offset != 0 {
			code, next = protocol.RespPullOffsetMoved, 0
		} else {
			code, empty = protocol.RespPullNotFound, true
		}
	case p.offset < minOff:
		code, next = protocol.RespPullOffsetMoved, minOff
	case p.offset == maxOff:
		code, empty = protocol.RespPullNotFound, true
	case p.offset > maxOff:
		code, next = protocol.RespPullOffsetMoved, maxOff
	default:
		var body []byte
		var n int
		var err error
		body, n, next, first, err = b.readMessagesFrom(p, filter, maxOff)
		switch {
		case err != nil:
			code = protocol.RespSystemError
			resp.Remark = err.Error()
			b.log.Error().Err(err).Str("topic", p.topic).Int32("queue_id", p.queueID).Int64("offset", p.offset).Msg("pull failed")
		case n == 0:
			code = protocol.RespPullRetryImmediately
		default:
			resp.Body = body
			b.metrics.messagesOut(p.topic, p.group, n, len(body))
		}
	}
	resp.Code = code
	resp.Header = &remoting.PullResponseHeader{NextBeginOffset: next, MinOffset: minOff, MaxOffset: maxOff,
		SuggestWhichBrokerID: b.repl.suggestBroker(p.whichSlow, first)}
	return resp, empty
}

// readMessages reads up to the pull's limits of matching messages from
// p.offset, returning the body, the count and the next offset to pull.
func (b *Broker) readMessages(p *pullRequest, filter tagFilter, maxOff int64) ([]byte, int, int64, error) {
	body, n, next, _, err := b.readMessagesFrom(p, filter, maxOff)
	return body, n, next, err
}

// readMessagesFrom is readMessages that also returns the commitlog offset
// of the first message read (-1 when none was).
func (b *Broker) readMessagesFrom(p *pullRequest, filter tagFilter, maxOff int64) ([]byte, int, int64, int64, error) {
	first := int64(-1)
	want := p.maxMsgs
	if want <= 0 {
		want = 1 // a Java store returns one message for maxMsgNums 0
	}
	want = min(want, b.c().PullMaxMessages)
	ep := entryPool.Get().(*[]consumequeue.Entry)
	defer entryPool.Put(ep)
	var body []byte
	n := 0
	next := p.offset
	scanned := 0
	// Scan at most a bounded window of entries per pull so a selective tag
	// filter cannot make one pull read a whole queue.
	const scanLimit = 16384
	for n < want && next < maxOff && scanned < scanLimit {
		entries, err := b.cq.Get(p.topic, p.queueID, next, min(want*4, 512), (*ep)[:0])
		if err != nil {
			return nil, 0, p.offset, -1, err
		}
		*ep = entries
		if len(entries) == 0 {
			break
		}
		for _, e := range entries {
			if n >= want || (n > 0 && len(body)+int(e.Size) > b.c().PullMaxBytes) {
				return body, n, next, first, nil
			}
			scanned++
			if !filter.match(e.TagsCode) {
				next++
				continue
			}
			start := len(body)
			body = append(body, make([]byte, e.Size)...)
			if err := b.clog.ReadAt(body[start:], e.Offset); err != nil {
				if n > 0 {
					return body[:start], n, next, first, nil
				}
				return nil, 0, p.offset, -1, fmt.Errorf("read message at commitlog offset %d: %w", e.Offset, err)
			}
			if n == 0 {
				first = e.Offset
			}
			n++
			next++
		}
	}
	return body, n, next, first, nil
}
