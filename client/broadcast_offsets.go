package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
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

// saveBroadcastOffsets writes the file atomically and durably: a temporary
// file, synced, renamed into place, then the directory synced so the
// rename itself survives a crash.
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
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil // a directory cannot be opened for syncing there; NTFS journals the rename
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	err = fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fsync syncs f; tests watch it.
var fsync = (*os.File).Sync
