package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Broadcasting consumers keep their offsets on the consumer's machine (no
// broker knows how far each member got), as RocketMQ's local offset store
// does: one JSON file per group and instance,
//
//	<dir>/<group>/<instance or "default">.json
//	{"offsets":[{"topic":"T","broker":"broker-a","queue_id":0,"offset":42}, ...]}
//
// loaded at start and rewritten (temporary file, then rename) with every
// commit round and at Close.

type broadcastOffset struct {
	Topic   string `json:"topic"`
	Broker  string `json:"broker"`
	QueueID int    `json:"queue_id"`
	Offset  int64  `json:"offset"`
}

func broadcastOffsetFile(dir, group, instance string) string {
	if instance == "" {
		instance = "default"
	}
	return filepath.Join(dir, group, instance+".json")
}

// loadBroadcastOffsets reads the file; a missing file means no offsets.
func loadBroadcastOffsets(path string) (map[MessageQueue]int64, error) {
	out := make(map[MessageQueue]int64)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	var f struct {
		Offsets []broadcastOffset `json:"offsets"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return out, fmt.Errorf("client: broadcast offsets %s: %w", path, err)
	}
	for _, o := range f.Offsets {
		out[MessageQueue{Topic: o.Topic, BrokerName: o.Broker, QueueID: o.QueueID}] = o.Offset
	}
	return out, nil
}

// saveBroadcastOffsets writes the file atomically.
func saveBroadcastOffsets(path string, offsets map[MessageQueue]int64) error {
	list := make([]broadcastOffset, 0, len(offsets))
	for q, off := range offsets {
		list = append(list, broadcastOffset{Topic: q.Topic, Broker: q.BrokerName, QueueID: q.QueueID, Offset: off})
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Broker != b.Broker {
			return a.Broker < b.Broker
		}
		return a.QueueID < b.QueueID
	})
	b, err := json.Marshal(map[string]any{"offsets": list})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
