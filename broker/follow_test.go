package broker

import (
	"errors"
	"testing"
	"time"
)

// A replica that follows another's log takes no consumer offsets of its
// own: a pull's commit offset is ignored, a commit request is refused with
// ErrNotMaster, and an offset it took as master and never stored is
// dropped when it starts following, so the offsets the master's records
// bring are never hidden behind it (after a failover the group would
// resume from the hidden, older value).
func TestFollowingReplicaTakesNoOffsets(t *testing.T) {
	b := testBroker(t, t.TempDir(), func(cfg *Config) {
		metaTestConfig(cfg)
		cfg.OffsetFlushInterval = Duration(time.Hour) // pull-carried offsets stay unstored
	})
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "real", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	q0 := offsetID{"g", "real", 0}
	if err := b.offsets.commit("g", []offsetCommit{{"real", 0, 5}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the commit to be applied", func() bool { return viewMeta(t, b).Offsets[q0] == 5 })
	b.offsets.set("g", "real", 1, 7) // carried by a pull, not yet stored

	b.FollowMetadata(true)
	if off, ok := b.offsets.get("g", "real", 0); !ok || off != 5 {
		t.Fatalf("stored offset after starting to follow: %d %v, want 5", off, ok)
	}
	if off, ok := b.offsets.get("g", "real", 1); ok {
		t.Fatalf("an offset never stored is still served after starting to follow: %d", off)
	}
	b.offsets.set("g", "real", 0, 99)
	if off, _ := b.offsets.get("g", "real", 0); off != 5 {
		t.Fatalf("a pull's commit offset changed a following replica's offset to %d", off)
	}
	if err := b.offsets.commit("g", []offsetCommit{{"real", 0, 100}}); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("commit on a following replica: %v, want ErrNotMaster", err)
	}
	if _, err := b.Admin().ResetOffset("g", "real", func(int32) (int64, error) { return 0, nil }); !errors.Is(err, ErrNotMaster) {
		t.Fatalf("offset reset on a following replica: %v, want ErrNotMaster", err)
	}
	// What the master's records bring is served.
	b.offsets.applySet(q0, 12)
	if off, _ := b.offsets.get("g", "real", 0); off != 12 {
		t.Fatalf("offset from the log: %d, want 12", off)
	}

	b.FollowMetadata(false)
	if err := b.offsets.commit("g", []offsetCommit{{"real", 0, 13}}); err != nil {
		t.Fatalf("commit once the replica is master again: %v", err)
	}
}
