package broker

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/rs/zerolog"

	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// TestDiskFullRefusesMetadataChanges: while the data disk is full an
// offset commit is answered SERVICE_NOT_AVAILABLE saying so (the client
// keeps its offset and commits it again), and topic and group changes are
// refused with ErrDiskFull; reads go on. Once there is room, all of it is
// accepted again without a restart and the offset committed before the
// disk filled is still there.
func TestDiskFullRefusesMetadataChanges(t *testing.T) {
	fs := &fillableFS{FS: vfs.Default}
	b := testBrokerWith(t, t.TempDir(), nil, WithFS(fs))
	c := newClient(t, b)
	mustOK(t, c.send("disk", 0, "a", nil))
	commit := func(off int64) *remoting.Command {
		return c.invoke(remoting.NewRequest(protocol.ReqUpdateConsumerOffset, map[string]string{
			"consumerGroup": "g", "topic": "disk", "queueId": "0", "commitOffset": fmt.Sprint(off),
		}, nil))
	}
	mustOK(t, commit(1))

	fs.full.Store(true)
	b.disk.check()
	if resp := commit(2); resp.Code != protocol.RespServiceNotAvailable || !strings.Contains(resp.Remark, "data disk is full") {
		t.Fatalf("offset commit on a full disk: code %d %q, want SERVICE_NOT_AVAILABLE saying the disk is full", resp.Code, resp.Remark)
	}
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "new", ReadQueueNums: 1, WriteQueueNums: 1}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("topic create on a full disk: %v, want ErrDiskFull", err)
	}
	if err := b.Admin().PutGroup(DefaultGroupConfig("g2", 16)); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("group create on a full disk: %v, want ErrDiskFull", err)
	}
	if err := b.Admin().DeleteTopic("disk"); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("topic delete on a full disk: %v, want ErrDiskFull", err)
	}
	if _, recs := c.pull("g", "disk", 0, 0, 0); len(recs) != 1 {
		t.Fatalf("read on a full disk: %d messages, want 1", len(recs))
	}

	fs.full.Store(false)
	waitFor(t, 3*time.Second, "offset commits accepted once space is freed", func() bool {
		return commit(2).Code == protocol.RespSuccess
	})
	if err := b.Admin().CreateTopic(TopicConfig{TopicName: "new", ReadQueueNums: 1, WriteQueueNums: 1}); err != nil {
		t.Fatal(err)
	}
	if off, ok := b.offsets.get("g", "disk", 0); !ok || off != 2 {
		t.Fatalf("committed offset %d %v, want 2", off, ok)
	}
}

// TestMetaReserveOnFullDisk fills a 16 MiB tmpfs under the metadata store
// and goes on writing: the first write that finds the disk full has the
// store give back its reserve and go through (without it pebble treats the
// failed write-ahead log write as fatal and the process exits), every
// write is kept, and once space is freed the reserve is made again. It
// needs root to mount the tmpfs and skips where that is not allowed.
func TestMetaReserveOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("metadata reserve test skipped: mounting its tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("metadata reserve test skipped: cannot mount a tmpfs here: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	m, err := openMeta(vfs.Default, filepath.Join(mnt, "meta"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if m != nil {
			m.close()
		}
	}()
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 64<<10))
	}
	f.Close()
	if !isNoSpace(err) {
		t.Fatalf("filling the disk: %v", err)
	}
	val := bytes.Repeat([]byte{'v'}, 1000)
	const n = 2000 // 2 MB: well within the reserve
	for i := range n {
		if err := m.db.Set(fmt.Appendf(nil, "k%05d", i), val, pebble.Sync); err != nil {
			t.Fatalf("write %d on a full disk: %v", i, err)
		}
	}
	if !m.reserve.Spent() {
		t.Fatal("the disk never ran full under the metadata store")
	}
	if err := m.reserve.restore(); err == nil {
		t.Fatal("the reserve was made again on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := m.reserve.restore(); err != nil || m.reserve.Spent() {
		t.Fatalf("reserve not made again once space was freed: %v", err)
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	if m, err = openMeta(vfs.Default, filepath.Join(mnt, "meta"), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		v, closer, err := m.db.Get(fmt.Appendf(nil, "k%05d", i))
		if err != nil || !bytes.Equal(v, val) {
			t.Fatalf("write %d lost: %v", i, err)
		}
		closer.Close()
	}
}

// cqFullFS is a disk on which the consume queues cannot create a queue
// directory while full, and which reports itself full meanwhile.
type cqFullFS struct {
	vfs.FS
	full atomic.Bool
}

func (f *cqFullFS) MkdirAll(dir string, perm os.FileMode) error {
	if _, err := f.FS.Stat(dir); err != nil && f.full.Load() && strings.Contains(dir, "consumequeue") {
		return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOSPC}
	}
	return f.FS.MkdirAll(dir, perm)
}

func (f *cqFullFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	const total = 1 << 30
	if f.full.Load() {
		return vfs.DiskUsage{TotalBytes: total, UsedBytes: total}, nil
	}
	return vfs.DiskUsage{TotalBytes: total, UsedBytes: total / 2, AvailBytes: total / 2}, nil
}

// TestDiskFullIndexWaits: a message stored just as the disk fills cannot
// be indexed (its queue's directory cannot be created); the broker is in
// the disk-full state, /readyz says new messages wait to be indexed, and
// once there is room the message is indexed and read without a restart.
func TestDiskFullIndexWaits(t *testing.T) {
	fs := &cqFullFS{FS: vfs.Default}
	b := testBrokerWith(t, t.TempDir(), func(c *Config) { c.HTTPHost, c.HTTPPort = "127.0.0.1", 0 }, WithFS(fs))
	c := newClient(t, b)
	mustOK(t, c.send("before", 0, "a", nil))
	b.disk.check()
	fs.full.Store(true)
	mustOK(t, c.send("later", 0, "b", nil))
	waitFor(t, 5*time.Second, "the consume queues waiting for space", b.cq.NoSpace)
	if code, body := readyz(t, b, ""); code != 200 || !strings.Contains(body, "new messages are indexed once it has room") {
		t.Fatalf("/readyz with the index waiting for space: %d %q", code, body)
	}
	if _, recs := c.pull("g", "before", 0, 0, 0); len(recs) != 1 {
		t.Fatalf("read of an indexed message on a full disk: %d messages, want 1", len(recs))
	}
	if err := b.cq.Err(); err != nil {
		t.Fatalf("a full disk stopped the index for good: %v", err)
	}

	fs.full.Store(false)
	waitFor(t, 10*time.Second, "the message stored as the disk filled", func() bool {
		_, recs := c.pull("g", "later", 0, 0, 0)
		return len(recs) == 1
	})
	waitFor(t, 3*time.Second, "sends accepted once space is freed", func() bool {
		return c.send("later", 0, "c", nil).Code == protocol.RespSuccess
	})
	if code, body := readyz(t, b, "?send=1"); code != 200 {
		t.Fatalf("/readyz?send=1 once space is freed: %d %q", code, body)
	}
}
