package broker

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrymq/ferry/delay"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// metaView is a broker's replicated metadata as its store holds it.
type metaView struct {
	Topics  map[string]TopicConfig
	Groups  map[string]GroupConfig
	Offsets map[offsetID]int64
	Delay   delay.Progress
}

func viewMeta(t *testing.T, b *Broker) metaView {
	t.Helper()
	tt, err := loadTopics(b.meta, 0)
	if err != nil {
		t.Fatal(err)
	}
	gt, err := loadGroups(b.meta)
	if err != nil {
		t.Fatal(err)
	}
	ot, err := loadOffsets(b.meta)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := delay.LoadProgress(b.meta.db, len(b.delays))
	if err != nil {
		t.Fatal(err)
	}
	return metaView{Topics: tt.topics, Groups: gt.groups, Offsets: ot.offsets, Delay: p}
}

// copyCommitlog copies the commitlog directory of data dir from into a
// new data dir and returns it: a broker opened there has nothing but the
// log.
func copyCommitlog(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	src, dst := filepath.Join(from, "commitlog"), filepath.Join(to, "commitlog")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() || e.Name() == "LOCK" {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func metaTestConfig(cfg *Config) {
	cfg.DelayLevels = "20ms 40ms"
	cfg.SegmentSize = 1 << 20
	cfg.MaxMessageSize = 16 << 10
}

// Every kind of metadata changed on broker A reaches broker B opened on a
// copy of A's commitlog alone.
func TestMetadataReplaysFromTheLog(t *testing.T) {
	dirA := t.TempDir()
	a := testBroker(t, dirA, metaTestConfig)
	c := newClient(t, a)
	for _, tc := range []TopicConfig{
		{TopicName: "orders", ReadQueueNums: 4, WriteQueueNums: 4},
		{TopicName: "doomed", ReadQueueNums: 2, WriteQueueNums: 2},
	} {
		if err := a.Admin().CreateTopic(tc); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Admin().CreateTopic(TopicConfig{TopicName: "orders", ReadQueueNums: 6, WriteQueueNums: 6}); err != nil {
		t.Fatal(err)
	}
	gc := DefaultGroupConfig("billing", 16)
	if err := a.Admin().PutGroup(gc); err != nil {
		t.Fatal(err)
	}
	gc.RetryMaxTimes = 5
	if err := a.Admin().PutGroup(gc); err != nil {
		t.Fatal(err)
	}
	if err := a.Admin().PutGroup(DefaultGroupConfig("gone", 16)); err != nil {
		t.Fatal(err)
	}
	for q := 0; q < 3; q++ {
		mustOK(t, c.send("orders", q, "m"+strconv.Itoa(q), nil))
		mustOK(t, c.send("doomed", 0, "d", nil))
	}
	commit := func(group, topic string, q int, off int64) {
		mustOK(t, c.invoke(remoting.NewRequest(protocol.ReqUpdateConsumerOffset, map[string]string{
			"consumerGroup": group, "topic": topic, "queueId": strconv.Itoa(q), "commitOffset": strconv.FormatInt(off, 10),
		}, nil)))
	}
	commit("billing", "orders", 0, 1)
	commit("billing", "orders", 1, 1)
	commit("billing", "doomed", 0, 2)
	commit("gone", "orders", 2, 1)
	// A pull-carried commit, stored by the periodic flush.
	a.offsets.set("billing", "orders", 2, 1)
	if err := a.offsets.flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Admin().ResetOffset("billing", "orders", func(q int32) (int64, error) {
		if q == 1 {
			return 0, nil
		}
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Admin().DeleteGroup("gone"); err != nil {
		t.Fatal(err)
	}
	if err := a.Admin().DeleteTopic("doomed"); err != nil {
		t.Fatal(err)
	}
	// Delay progress: a delayed message delivered.
	mustOK(t, c.send("orders", 3, "later", map[string]string{protocol.PropDelayLevel: "1"}))
	waitFor(t, 10*time.Second, "the delayed message to be delivered", func() bool { return a.cq.MaxOffset("orders", 3) == 1 })
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	dirB := copyCommitlog(t, dirA)
	a2 := testBroker(t, dirA, metaTestConfig)
	want := viewMeta(t, a2)
	b := testBroker(t, dirB, metaTestConfig)
	got := viewMeta(t, b)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("B replaying A's log:\n got %+v\nwant %+v", got, want)
	}
	// And the content is what A was told.
	if tc := got.Topics["orders"]; tc.ReadQueueNums != 6 {
		t.Fatalf("orders: %+v", tc)
	}
	if _, ok := got.Topics["doomed"]; ok {
		t.Fatal("a deleted topic came back")
	}
	if g := got.Groups["billing"]; g.RetryMaxTimes != 5 {
		t.Fatalf("billing: %+v", g)
	}
	if _, ok := got.Groups["gone"]; ok {
		t.Fatal("a deleted group came back")
	}
	wantOff := map[offsetID]int64{{"billing", "orders", 0}: 1, {"billing", "orders", 1}: 0, {"billing", "orders", 2}: 1}
	for id, v := range wantOff {
		if got.Offsets[id] != v {
			t.Fatalf("offset %v = %d, want %d (all %v)", id, got.Offsets[id], v, got.Offsets)
		}
	}
	for id := range got.Offsets {
		if id.group == "gone" || id.topic == "doomed" {
			t.Fatalf("offset %v of a deleted group or topic came back", id)
		}
	}
	if len(got.Delay.Levels) < 1 || got.Delay.Levels[0] != 1 {
		t.Fatalf("delay progress %+v, want level 1 at 1", got.Delay)
	}
	// B serves what it replayed.
	if off, ok := b.offsets.get("billing", "orders", 0); !ok || off != 1 {
		t.Fatalf("B serves offset %d %v", off, ok)
	}
	if _, ok := b.Admin().Topic("orders"); !ok {
		t.Fatal("B does not serve topic orders")
	}
}

// A data directory from before metadata records (the store has metadata,
// the log none) gets a snapshot at its first start, so a copy of its log
// carries it.
func TestMetadataUpgradeWritesSnapshot(t *testing.T) {
	dirA := t.TempDir()
	a := testBroker(t, dirA, metaTestConfig)
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Make it an old data directory: metadata only in the store.
	os.RemoveAll(filepath.Join(dirA, "commitlog"))
	os.RemoveAll(filepath.Join(dirA, "consumequeue"))
	m, err := openMeta(a.fs, filepath.Join(dirA, "meta"), a.log)
	if err != nil {
		t.Fatal(err)
	}
	b := m.db.NewBatch()
	for _, c := range []metaChange{
		{Kind: metaTopicPut, Topic: TopicConfig{TopicName: "legacy", ReadQueueNums: 3, WriteQueueNums: 3, Perm: 6, TopicFilterType: "SINGLE_TAG"}},
		{Kind: metaGroupPut, Group: DefaultGroupConfig("oldgroup", 16)},
		{Kind: metaOffsetSet, Offset: offsetID{"oldgroup", "legacy", 2}, Value: 77},
	} {
		if err := applyMetaChange(b, &c); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete([]byte(keyMetaApplied), nil); err != nil {
		t.Fatal(err)
	}
	if err := m.db.Apply(b, nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := m.close(); err != nil {
		t.Fatal(err)
	}

	a2 := testBroker(t, dirA, metaTestConfig)
	if _, ok := a2.Admin().Topic("legacy"); !ok {
		t.Fatal("the upgraded broker lost topic legacy")
	}
	if err := a2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := viewMeta(t, testBroker(t, copyCommitlog(t, dirA), metaTestConfig))
	if _, ok := got.Topics["legacy"]; !ok {
		t.Fatalf("topics from the log: %v", got.Topics)
	}
	if _, ok := got.Groups["oldgroup"]; !ok {
		t.Fatalf("groups from the log: %v", got.Groups)
	}
	if v := got.Offsets[offsetID{"oldgroup", "legacy", 2}]; v != 77 {
		t.Fatalf("offset from the log: %d", v)
	}
}

// Retention deletes the segments that held the metadata records, and the
// kept log still reconstructs all metadata.
func TestMetadataSurvivesRetention(t *testing.T) {
	dirA := t.TempDir()
	a := testBroker(t, dirA, func(cfg *Config) {
		metaTestConfig(cfg)
		cfg.SegmentSize = 1 << 20
		cfg.FileReservedTime = Duration(time.Millisecond)
	})
	c := newClient(t, a)
	if err := a.Admin().CreateTopic(TopicConfig{TopicName: "kept", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.Admin().PutGroup(DefaultGroupConfig("g", 16)); err != nil {
		t.Fatal(err)
	}
	mustOK(t, c.send("kept", 0, "x", nil))
	if err := a.offsets.commit("g", []offsetCommit{{"kept", 0, 1}}); err != nil {
		t.Fatal(err)
	}
	firstMeta := a.metaLog.lastEnd.Load()
	body := string(make([]byte, 8<<10))
	for a.clog.WrittenOffset() < 3<<20 {
		mustOK(t, c.send("kept", 1, body, nil))
	}
	a.retention(time.Now().Add(time.Hour))
	if a.clog.MinOffset() < firstMeta {
		t.Fatalf("retention kept the log from %d; the test needs the first metadata records (before %d) deleted", a.clog.MinOffset(), firstMeta)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := viewMeta(t, testBroker(t, copyCommitlog(t, dirA), metaTestConfig))
	if tc, ok := got.Topics["kept"]; !ok || tc.ReadQueueNums != 2 {
		t.Fatalf("topic after retention: %+v %v", tc, ok)
	}
	if _, ok := got.Groups["g"]; !ok {
		t.Fatal("group lost with the deleted segments")
	}
	if v := got.Offsets[offsetID{"g", "kept", 0}]; v != 1 {
		t.Fatalf("offset after retention: %d", v)
	}
}

// RebuildMetadata forgets what the store holds and rebuilds it from the
// kept log: an entry written to the store alone goes, every change in the
// log comes back, and the tables serve the result.
func TestRebuildMetadataFromLog(t *testing.T) {
	b := testBroker(t, t.TempDir(), metaTestConfig)
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "real", ReadQueueNums: 2, WriteQueueNums: 2}); err != nil {
		t.Fatal(err)
	}
	if err := b.offsets.commit("g", []offsetCommit{{"real", 1, 9}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the commit to be applied", func() bool {
		return viewMeta(t, b).Offsets[offsetID{"g", "real", 1}] == 9
	})
	want := viewMeta(t, b)
	// A topic only the store knows (as a truncated replica could hold).
	batch := b.meta.db.NewIndexedBatch()
	c := metaChange{Kind: metaTopicPut, Topic: TopicConfig{TopicName: "phantom", ReadQueueNums: 1, WriteQueueNums: 1}}
	if err := applyMetaChange(batch, &c); err != nil {
		t.Fatal(err)
	}
	if err := b.meta.db.Apply(batch, nil); err != nil {
		t.Fatal(err)
	}
	batch.Close()
	b.topics.applyPut(c.Topic)
	if err := b.RebuildMetadata(); err != nil {
		t.Fatal(err)
	}
	if got := viewMeta(t, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("after rebuild:\n got %+v\nwant %+v", got, want)
	}
	if _, ok := b.Admin().Topic("phantom"); ok {
		t.Fatal("the table still serves a topic the log never had")
	}
	if off, ok := b.offsets.get("g", "real", 1); !ok || off != 9 {
		t.Fatalf("offset after rebuild: %d %v", off, ok)
	}
}

// The metadata topic is the broker's alone: sends and topic admin are
// refused, and an offset id never finds one of its records.
func TestMetaTopicIsReserved(t *testing.T) {
	b := testBroker(t, t.TempDir(), metaTestConfig)
	c := newClient(t, b)
	if resp := c.send(protocol.MetaTopic, 0, "forged", nil); resp.Code == protocol.RespSuccess {
		t.Fatal("a send to the metadata topic was accepted")
	}
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: protocol.MetaTopic, ReadQueueNums: 1, WriteQueueNums: 1}); err == nil {
		t.Fatal("the metadata topic was created by topic admin")
	}
	if err := b.Admin().DeleteTopic(protocol.MetaTopic); err == nil {
		t.Fatal("the metadata topic was deleted by topic admin")
	}
	// The first record (offset 0) is a metadata record written before the
	// broker had an address: host 0.0.0.0:0.
	if rec, _, err := b.clog.ReadRecord(0, nil); err != nil || string(rec.Topic) != protocol.MetaTopic {
		t.Fatalf("record 0: %v %s", err, rec.Topic)
	}
	if _, err := b.messages.byID(strings.Repeat("0", 32)); err == nil {
		t.Fatal("an offset id found the first metadata record")
	}
}
