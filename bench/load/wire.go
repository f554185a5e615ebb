package load

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ferrymq/ferry/internal/poll"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// ensureTopic creates topic with queues on every broker of the cluster if
// the name server has no route, and returns its queues.
func ensureTopic(ctx context.Context, ns *remoting.Client, nsAddr, topic string, queues int, dedup time.Duration) ([]target, error) {
	route, err := remoting.GetRouteInfo(ctx, ns, nsAddr, topic)
	if err != nil {
		var re *remoting.ResponseError
		if !errors.As(err, &re) || re.Code != protocol.RespTopicNotExist {
			return nil, fmt.Errorf("load: route of %s from %s: %w", topic, nsAddr, err)
		}
		resp, err := ns.Invoke(ctx, nsAddr, remoting.NewRequest(protocol.ReqGetBrokerClusterInfo, nil, nil))
		if err != nil {
			return nil, fmt.Errorf("load: cluster info: %w", err)
		}
		var ci remoting.ClusterInfo
		if err := remoting.DecodeBody(resp.Body, &ci); err != nil {
			return nil, err
		}
		if len(ci.BrokerAddrTable) == 0 {
			return nil, fmt.Errorf("load: no broker registered with %s", nsAddr)
		}
		for _, bd := range ci.BrokerAddrTable {
			addr := bd.BrokerAddrs[0]
			q := strconv.Itoa(queues)
			ext := map[string]string{"topic": topic, "readQueueNums": q, "writeQueueNums": q, "perm": "6"}
			if dedup > 0 {
				ext["dedupWindow"] = strconv.FormatInt(dedup.Milliseconds(), 10)
			}
			resp, err := ns.Invoke(ctx, addr, remoting.NewRequest(protocol.ReqUpdateAndCreateTopic, ext, nil))
			if err == nil {
				err = resp.Err()
			}
			if err != nil {
				return nil, fmt.Errorf("load: create %s on %s: %w", topic, addr, err)
			}
		}
		// The broker re-registers at once; wait for the route.
		_ = poll.Until(ctx, 10*time.Second, 20*time.Millisecond, func() bool {
			route, err = remoting.GetRouteInfo(ctx, ns, nsAddr, topic)
			return err == nil
		})
		if err != nil {
			return nil, fmt.Errorf("load: route of new topic %s: %w", topic, err)
		}
	}
	addrs := map[string]string{}
	for _, bd := range route.BrokerDatas {
		addrs[bd.BrokerName] = bd.BrokerAddrs[0]
	}
	var out []target
	for _, qd := range route.QueueDatas {
		for q := 0; q < int(qd.WriteQueueNums); q++ {
			out = append(out, target{topic: topic, queue: q, broker: addrs[qd.BrokerName]})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("load: topic %s has no writable queue", topic)
	}
	return out, nil
}

// sendRequest fills req (nil: a new one) as a SEND_MESSAGE_V2 of body to
// tg, with a unique key made of the send time and the producer's counter.
// extra, when not empty, is more wire-form properties.
func sendRequest(req *remoting.Command, tg target, body []byte, now time.Time, n int, extra []byte) *remoting.Command {
	var props [160]byte
	p := appendUniqKey(props[:0], now, uint64(n))
	if len(extra) > 0 {
		p = append(append(p, protocol.PropertySep), extra...)
	}
	return v2Request(req, protocol.ReqSendMessageV2, tg, body, now, string(p), false)
}

// idemSeqs is one sending goroutine's idempotent producer state: its
// epoch per broker and next sequence per queue.
type idemSeqs struct {
	id    string
	epoch map[string]int32 // by broker address
	next  map[target]int64
}

// ensure starts the producer on tg's broker (INIT_PRODUCER_ID) once, or
// again after a send whose outcome is unknown.
func (s *idemSeqs) ensure(ctx context.Context, cl *remoting.Client, tg target, timeout time.Duration) error {
	if _, ok := s.epoch[tg.broker]; ok {
		return nil
	}
	resp, err := cl.InvokeTimeout(ctx, tg.broker, remoting.NewRequest(protocol.ReqInitProducerID, map[string]string{"producerId": s.id}, nil), timeout)
	if err != nil {
		return err
	}
	if resp.Code != protocol.RespSuccess {
		return fmt.Errorf("INIT_PRODUCER_ID: code %d: %s", resp.Code, resp.Remark)
	}
	var body remoting.InitProducerIDResponse
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return err
	}
	s.epoch[tg.broker] = body.Epoch
	for t := range s.next {
		if t.broker == tg.broker {
			delete(s.next, t)
		}
	}
	for _, q := range body.Queues {
		s.next[target{topic: q.Topic, queue: int(q.QueueID), broker: tg.broker}] = q.LastSeq + 1
	}
	return nil
}

// props appends message i's producer properties for a send to tg.
func (s *idemSeqs) props(dst []byte, tg target, i int) []byte {
	dst = protocol.AppendProperty(dst, protocol.PropProducerID, s.id)
	dst = protocol.AppendProperty(dst, protocol.PropProducerEpoch, strconv.Itoa(int(s.epoch[tg.broker])))
	return protocol.AppendProperty(dst, protocol.PropProducerSeq, strconv.FormatInt(s.next[tg]+int64(i), 10))
}

// answered moves tg's sequence past a stored send of n messages; after a
// failure the broker is asked again.
func (s *idemSeqs) answered(tg target, n int, ok bool) {
	if ok {
		s.next[tg] += int64(n)
		return
	}
	delete(s.epoch, tg.broker)
}

// batchRequest fills req (nil: a new one) as a SEND_BATCH_MESSAGE of body
// to tg.
func batchRequest(req *remoting.Command, tg target, body []byte, now time.Time) *remoting.Command {
	return v2Request(req, protocol.ReqSendBatchMessage, tg, body, now, "", true)
}

// v2Request fills req (nil: a new one of code) with the one-letter header
// names the Java client sends for both codes, and body.
func v2Request(req *remoting.Command, code int16, tg target, body []byte, now time.Time, props string, batch bool) *remoting.Command {
	if req == nil {
		req = remoting.NewRequest(code, make(map[string]string, 16), nil)
	}
	ext := req.ExtFields
	ext["a"], ext["b"], ext["c"], ext["d"], ext["e"], ext["f"] = "ferry-bench", tg.topic, protocol.AutoCreateTopicTemplate, "4", strconv.Itoa(tg.queue), "0"
	ext["g"], ext["h"], ext["i"], ext["j"], ext["k"], ext["l"] = strconv.FormatInt(now.UnixMilli(), 10), "0", props, "0", "false", "0"
	ext["m"] = strconv.FormatBool(batch)
	req.Body = append(req.Body[:0], body...)
	return req
}

// appendHex16 appends v as 16 upper-case hex digits.
// appendUniqKey appends a UNIQ_KEY property unique to (now, n): every
// RocketMQ client and Ferry's SDK give each message one.
func appendUniqKey(dst []byte, now time.Time, n uint64) []byte {
	dst = append(dst, protocol.PropUniqKey...)
	dst = append(dst, protocol.PropertyNameSep)
	dst = appendHex16(dst, uint64(now.UnixNano()))
	return appendHex16(dst, n)
}

func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[v>>uint(shift)&0xF])
	}
	return dst
}

// appendBatchMessages appends the count members of request n's
// SEND_BATCH_MESSAGE body, each with its own UNIQ_KEY and, with idem, its
// producer properties; props is scratch space, returned for reuse.
func appendBatchMessages(dst, props, body []byte, now time.Time, n, count int, idem *idemSeqs, tg target) ([]byte, []byte) {
	for i := 0; i < count; i++ {
		props = appendUniqKey(props[:0], now, uint64(n)<<16|uint64(i))
		if idem != nil {
			props = idem.props(append(props, protocol.PropertySep), tg, i)
		}
		dst = appendBatchMessage(dst, body, props)
	}
	return dst, props
}

// appendBatchMessage encodes one member of a SEND_BATCH_MESSAGE body.
func appendBatchMessage(dst, body, props []byte) []byte {
	be := binary.BigEndian
	dst = be.AppendUint32(dst, uint32(22+len(body)+len(props)))
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, 0)
	dst = be.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	dst = be.AppendUint16(dst, uint16(len(props)))
	return append(dst, props...)
}

// consumeQueue long-polls one queue from its current end, calling seen
// with the born time of every message.
func consumeQueue(ctx context.Context, cl *remoting.Client, tg target, seen func(born int64)) {
	off := int64(-1)
	for ctx.Err() == nil {
		if off < 0 {
			resp, err := cl.Invoke(ctx, tg.broker, remoting.NewRequest(protocol.ReqGetMaxOffset,
				map[string]string{"topic": tg.topic, "queueId": strconv.Itoa(tg.queue)}, nil))
			if err != nil {
				return
			}
			off, _ = resp.Int64("offset")
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := cl.Invoke(pctx, tg.broker, remoting.NewRequest(protocol.ReqPullMessage, map[string]string{
			"consumerGroup": "ferry-bench", "topic": tg.topic, "queueId": strconv.Itoa(tg.queue),
			"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "64", "sysFlag": "6", "commitOffset": "0",
			"suspendTimeoutMillis": "15000", "subscription": "*", "subVersion": "0", "expressionType": "TAG",
		}, nil))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if n, err := resp.Int64("nextBeginOffset"); err == nil {
			off = n
		}
		for b := resp.Body; len(b) > 0; {
			rec, err := protocol.Decode(b)
			if err != nil {
				break
			}
			if len(rec.Body) >= 8 {
				seen(int64(binary.BigEndian.Uint64(rec.Body)))
			}
			b = b[rec.Size:]
		}
	}
}
