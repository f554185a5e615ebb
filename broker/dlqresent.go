package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ferrymq/ferry/dlq"
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
func (b *Broker) withResent(group string, dls []dlq.DeadLetter) error {
	for i := range dls {
		r, ok, err := b.meta.resent(group, dls[i].QueueOffset)
		if err != nil {
			return err
		}
		if ok {
			dls[i].ResentAtMillis, dls[i].ResentTo = r.AtMillis, r.Target
		}
	}
	return nil
}
