package idempotence

import (
	"encoding/json"
	"fmt"
)

// snapshotVersion is part of the format: bump it when the layout changes
// (an unknown version is refused, and the broker rebuilds from the log).
const snapshotVersion = 1

// The snapshot is JSON:
//
//	{"v":1,"covers":<commitlog offset>,"producers":[
//	  {"id":"…","epoch":3,"seen":<unix ms>,"queues":[
//	    {"topic":"…","queue":0,"last":41,"batches":[{"first":40,"qoff":17,"offs":[1024,1311]}]}]}]}
//
// covers is the commitlog offset below which every message is reflected
// in the table: recovery replays the log from there.
type snapshot struct {
	Version   int            `json:"v"`
	Covers    int64          `json:"covers"`
	Producers []snapProducer `json:"producers"`
}

type snapProducer struct {
	ID     string      `json:"id"`
	Epoch  int32       `json:"epoch"`
	Seen   int64       `json:"seen"`
	Queues []snapQueue `json:"queues"`
}

type snapQueue struct {
	Topic   string      `json:"topic"`
	Queue   int32       `json:"queue"`
	Last    int64       `json:"last"`
	Batches []snapBatch `json:"batches"`
}

type snapBatch struct {
	First int64   `json:"first"`
	QOff  int64   `json:"qoff"`
	Offs  []int64 `json:"offs"`
}

// Snapshot encodes the table with the commitlog offset it covers.
func (t *Table) Snapshot(covers int64) ([]byte, error) {
	s := snapshot{Version: snapshotVersion, Covers: covers, Producers: make([]snapProducer, 0, len(t.producers))}
	for id, p := range t.producers {
		sp := snapProducer{ID: id, Epoch: p.Epoch, Seen: p.LastSeen}
		for q, qs := range p.Queues {
			sq := snapQueue{Topic: q.Topic, Queue: q.ID, Last: qs.LastSeq}
			for _, b := range qs.Batches {
				sq.Batches = append(sq.Batches, snapBatch{First: b.FirstSeq, QOff: b.QueueOffset, Offs: b.Offsets})
			}
			sp.Queues = append(sp.Queues, sq)
		}
		s.Producers = append(s.Producers, sp)
	}
	return json.Marshal(s)
}

// Restore decodes a snapshot made by Snapshot and returns the table and
// the commitlog offset it covers. A malformed snapshot is an error: the
// caller rebuilds from the start of the log instead.
func Restore(data []byte) (*Table, int64, error) {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, 0, fmt.Errorf("idempotence: decode snapshot: %w", err)
	}
	if s.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("idempotence: snapshot version %d, want %d", s.Version, snapshotVersion)
	}
	if s.Covers < 0 {
		return nil, 0, fmt.Errorf("idempotence: snapshot covers offset %d", s.Covers)
	}
	t := New()
	for _, sp := range s.Producers {
		if sp.ID == "" {
			return nil, 0, fmt.Errorf("idempotence: snapshot has a producer without id")
		}
		p := t.producer(sp.ID)
		p.Epoch, p.LastSeen = sp.Epoch, sp.Seen
		for _, sq := range sp.Queues {
			qs := p.queue(Queue{Topic: sq.Topic, ID: sq.Queue})
			for _, b := range sq.Batches {
				if len(b.Offs) == 0 || b.First < 0 {
					return nil, 0, fmt.Errorf("idempotence: snapshot has an empty batch for producer %s", sp.ID)
				}
				qs.push(batch{FirstSeq: b.First, QueueOffset: b.QOff, Offsets: b.Offs})
			}
			qs.LastSeq = sq.Last
		}
	}
	return t, s.Covers, nil
}
