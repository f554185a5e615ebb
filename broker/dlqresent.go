package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/dlq"
	"github.com/ferrymq/ferry/protocol"
)

// Resent dead letters are recorded in the metadata store, one key per
// dead letter (r/<group>\x00<DLQ queue offset u64 BE>), so that a resend
// never sends one twice and the DLQ listings say what was resent, when and
// where. The record is written after the resent copies are appended: a
// crash between the two can resend a dead letter once more.

const prefixResent = "r/"

// resentRecord is what the store keeps of a resent dead letter.
type resentRecord struct {
	AtMillis int64  `json:"at_ms"`
	Target   string `json:"target"` // "topic" or "retry"
}

func resentKey(group string, queueOffset int64) []byte {
	k := make([]byte, 0, len(prefixResent)+len(group)+9)
	k = append(k, prefixResent...)
	k = append(k, group...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(queueOffset))
}

// resent returns the record of group's dead letter at queueOffset.
func (m *metaStore) resent(group string, queueOffset int64) (resentRecord, bool, error) {
	v, closer, err := m.db.Get(resentKey(group, queueOffset))
	if errors.Is(err, pebble.ErrNotFound) {
		return resentRecord{}, false, nil
	}
	if err != nil {
		return resentRecord{}, false, err
	}
	defer closer.Close()
	var r resentRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return resentRecord{}, false, fmt.Errorf("broker: resend record of %s at %d: %w", group, queueOffset, err)
	}
	return r, true, nil
}

// markResent records the dead letters of group at offsets as resent, in
// one synced batch.
func (m *metaStore) markResent(group string, offsets []int64, r resentRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b := m.db.NewBatch()
	defer b.Close()
	for _, o := range offsets {
		if err := b.Set(resentKey(group, o), v, nil); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

// forgetResent drops every resend record of group (its DLQ was deleted).
func (m *metaStore) forgetResent(group string) error {
	lo := resentKey(group, 0)
	hi := append(resentKey(group, 0)[:len(prefixResent)+len(group)], 1)
	return m.db.DeleteRange(lo, hi, pebble.Sync)
}

// withResent fills in the resend records of dead letters of group.
func (m *metaStore) withResent(group string, dls []dlq.DeadLetter) error {
	for i := range dls {
		r, ok, err := m.resent(group, dls[i].QueueOffset)
		if err != nil {
			return err
		}
		if ok {
			dls[i].ResentAtMillis, dls[i].ResentTo = r.AtMillis, r.Target
		}
	}
	return nil
}

// DLQList lists up to max dead letters of group from queue offset from.
func (a *Admin) DLQList(group string, from int64, max int) ([]dlq.DeadLetter, int64, error) {
	if _, ok := a.topics.get(protocol.DLQTopic(group)); !ok {
		return nil, 0, nil
	}
	dls, next, err := dlq.List(a.cq, a.clog, group, from, max)
	if err == nil {
		err = a.meta.withResent(group, dls)
	}
	return dls, next, err
}

// DLQResend resends the dead letters of group at the given DLQ queue
// offsets (all of them when offsets is nil) and returns how many went and
// how many were skipped as resent already (each is resent once: see
// dlqresent.go).
func (a *Admin) DLQResend(group string, offsets []int64, target dlq.Target) (sent, skipped int, err error) {
	topic := protocol.DLQTopic(group)
	if _, ok := a.topics.get(topic); !ok {
		return 0, 0, fmt.Errorf("%w: group %s has no dead letters", ErrTopicNotFound, group)
	}
	if offsets == nil {
		lo := a.minOffset(topic, 0)
		for o := lo; o < a.cq.MaxOffset(topic, 0); o++ {
			offsets = append(offsets, o)
		}
	}
	var batch []commitlog.Message
	var batchOffs []int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := a.clog.Append(batch, nil); err != nil && !errors.Is(err, commitlog.ErrFlushTimeout) {
			return err
		}
		if err := a.meta.markResent(group, batchOffs, resentRecord{AtMillis: time.Now().UnixMilli(), Target: target.String()}); err != nil {
			return fmt.Errorf("broker: %d dead letters resent but not recorded: %w", len(batch), err)
		}
		sent += len(batch)
		batch, batchOffs = batch[:0], batchOffs[:0]
		return nil
	}
	var buf []byte
	seen := make(map[int64]bool, len(offsets))
	for _, qo := range offsets {
		if seen[qo] {
			continue
		}
		seen[qo] = true
		if _, done, err := a.meta.resent(group, qo); err != nil {
			return sent, skipped, err
		} else if done {
			skipped++
			continue
		}
		es, err := a.cq.Get(topic, 0, qo, 1, nil)
		if err != nil || len(es) == 0 || es[0].Size == 0 {
			return sent, skipped, fmt.Errorf("%w: no dead letter at offset %d of %s", ErrInvalidRequest, qo, topic)
		}
		var rec protocol.Record
		rec, buf, err = a.clog.ReadRecord(es[0].Offset, buf)
		if err != nil {
			return sent, skipped, err
		}
		dest := dlq.OriginalTopic(rec)
		var queue int32
		if target == dlq.ToOriginalTopic {
			tc, ok := a.topics.get(dest)
			if !ok || strings.HasPrefix(dest, protocol.DLQTopicPrefix) {
				return sent, skipped, fmt.Errorf("%w: original topic %s of dead letter %d does not exist", ErrTopicNotFound, dest, qo)
			}
			if !protocol.PermWritable(tc.Perm) {
				return sent, skipped, fmt.Errorf("%w: topic %s is not writable", ErrNoPermission, dest)
			}
			queue = rand.Int32N(tc.WriteQueueNums)
		} else if _, err := a.topics.ensure(groupTopicConfig(protocol.RetryTopic(group))); err != nil {
			return sent, skipped, err
		}
		m := dlq.ResendMessage(rec, group, target, queue)
		m.StoreHost = a.host()
		batch, batchOffs = append(batch, m), append(batchOffs, qo)
		if len(batch) >= 256 {
			if err := flush(); err != nil {
				return sent, skipped, err
			}
		}
	}
	if err := flush(); err != nil {
		return sent, skipped, err
	}
	a.log.Info().Str("group", group).Int("count", sent).Int("skipped", skipped).Msg("dead letters resent")
	return sent, skipped, nil
}
