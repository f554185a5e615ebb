package broker

// The producer properties of an idempotent producer's messages
// (idempotent.go): parsed from the wire form in one pass, checked, and
// checked to agree across a batch.

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// producerFields are an idempotent message's producer properties.
type producerFields struct {
	pid   string
	epoch int32
	seq   int64
}

// parseProducerFields reads the producer properties of wire-form props;
// ok is false when the message carries no producer id.
func parseProducerFields(props []byte) (f producerFields, ok bool, err error) {
	pid, es, ss, ok := producerProps(props)
	if !ok {
		return f, false, nil
	}
	if f.epoch, f.seq, err = checkProducerProps(pid, es, ss); err != nil {
		return f, true, err
	}
	f.pid = string(pid)
	return f, true, nil
}

// checkProducerProps checks the raw producer properties and returns the
// epoch and sequence.
func checkProducerProps(pid, es, ss []byte) (int32, int64, error) {
	if len(pid) == 0 || len(pid) > maxProducerIDLen {
		return 0, 0, fmt.Errorf("%w: %s must be 1 to %d bytes", errIdempotent, protocol.PropProducerID, maxProducerIDLen)
	}
	e, ok := parseNonNegative(es)
	if !ok || e > math.MaxInt32 {
		return 0, 0, fmt.Errorf("%w: %s %q is not an epoch (a non-negative integer)", errIdempotent, protocol.PropProducerEpoch, es)
	}
	seq, ok := parseNonNegative(ss)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %s %q is not a sequence (a non-negative integer)", errIdempotent, protocol.PropProducerSeq, ss)
	}
	return int32(e), seq, nil
}

// producerProps finds the producer properties of wire-form props in one
// pass (the first of each name, as protocol.Property does); ok is false
// without a producer id.
func producerProps(p []byte) (pid, epoch, seq []byte, ok bool) {
	var haveEpoch, haveSeq bool
	for i := 0; i < len(p); {
		end := bytes.IndexByte(p[i:], protocol.PropertySep)
		if end < 0 {
			end = len(p)
		} else {
			end += i
		}
		item := p[i:end]
		i = end + 1
		sep := bytes.IndexByte(item, protocol.PropertyNameSep)
		if sep <= 0 || item[0] != '_' {
			continue
		}
		switch string(item[:sep]) {
		case protocol.PropProducerID:
			if !ok {
				pid, ok = item[sep+1:], true
			}
		case protocol.PropProducerEpoch:
			if !haveEpoch {
				epoch, haveEpoch = item[sep+1:], true
			}
		case protocol.PropProducerSeq:
			if !haveSeq {
				seq, haveSeq = item[sep+1:], true
			}
		}
	}
	return pid, epoch, seq, ok
}

// parseNonNegative parses decimal digits into a non-negative int64.
func parseNonNegative(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// batchProducerFields checks that msgs are all idempotent or all plain
// and, when idempotent, share one producer and epoch with consecutive
// sequences; it returns the first message's fields.
func batchProducerFields(msgs []commitlog.Message) (producerFields, bool, error) {
	first, ok, err := parseProducerFields(msgs[0].Properties)
	if err != nil {
		return first, true, err
	}
	for i := 1; i < len(msgs); i++ {
		pid, es, ss, ok2 := producerProps(msgs[i].Properties)
		if ok2 != ok {
			return first, true, fmt.Errorf("%w: a batch mixes messages with and without %s", errIdempotent, protocol.PropProducerID)
		}
		if !ok {
			continue
		}
		epoch, seq, err := checkProducerProps(pid, es, ss)
		switch {
		case err != nil:
			return first, true, fmt.Errorf("message %d: %w", i, err)
		case string(pid) != first.pid || epoch != first.epoch || seq != first.seq+int64(i):
			return first, true, fmt.Errorf("%w: message %d of the batch is %s/%d/%d, want %s/%d/%d",
				errIdempotent, i, pid, epoch, seq, first.pid, first.epoch, first.seq+int64(i))
		}
	}
	return first, ok, nil
}

// requestQueueID is the queue id a send request names (-1 when none).
func requestQueueID(req *remoting.Command) int {
	s, ok := req.Lookup("queueId")
	if !ok {
		s, _ = req.Lookup(v2Key["queueId"])
	}
	q, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return q
}
