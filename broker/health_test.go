package broker

import (
	"github.com/ferrymq/ferry/protocol"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/remoting"
)

// fillableFS is a disk that can be made full: while full, it reports no
// free space and a commitlog write that would grow a segment writes half
// of its bytes and fails with ENOSPC.
type fillableFS struct {
	vfs.FS
	full atomic.Bool
}

type fillableFile struct {
	vfs.File
	fs *fillableFS
}

func (fs *fillableFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.Contains(name, "commitlog") {
		return f, err
	}
	return fillableFile{f, fs}, nil
}

func (fs *fillableFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *fillableFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *fillableFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	const total = 1 << 30
	if fs.full.Load() {
		return vfs.DiskUsage{TotalBytes: total, UsedBytes: total}, nil
	}
	return vfs.DiskUsage{TotalBytes: total, UsedBytes: total / 2, AvailBytes: total / 2}, nil
}

func (f fillableFile) WriteAt(b []byte, off int64) (int, error) {
	if !f.fs.full.Load() || len(b) < 2 {
		return f.File.WriteAt(b, off)
	}
	if fi, err := f.Stat(); err == nil && off+int64(len(b)) <= fi.Size() {
		return f.File.WriteAt(b, off) // overwriting needs no space
	}
	n, err := f.File.WriteAt(b[:len(b)/2], off)
	if err != nil {
		return n, err
	}
	return n, syscall.ENOSPC
}

func (f fillableFile) Preallocate(int64, int64) error { return syscall.ENOSPC }

func readyz(t *testing.T, b *Broker, query string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + b.HTTPAddr() + "/readyz" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDiskFullThenRoom: a write that finds the disk full is refused
// (SERVICE_NOT_AVAILABLE) and so are the sends after it, while reads go on
// and /readyz stays 200 saying sends are refused (/readyz?send=1 is 503).
// Once space is freed, sends are accepted again at once — well within the
// 10 s of the periodic check, without a restart — and every acknowledged
// message is there, with dense queue offsets.
func TestDiskFullThenRoom(t *testing.T) {
	fs := &fillableFS{FS: vfs.Default}
	b := testBrokerWith(t, t.TempDir(), func(c *Config) { c.HTTPHost, c.HTTPPort = "127.0.0.1", 0 }, WithFS(fs))
	c := newClient(t, b)
	var acked []string
	send := func(body string) *remoting.Command {
		resp := c.send("disk", 0, body, nil)
		if resp.Code == protocol.RespSuccess {
			acked = append(acked, body)
		}
		return resp
	}
	for i := range 5 {
		mustOK(t, send(strings.Repeat("a", 100+i)))
	}

	// The disk fills right after a periodic look at it: the failing write
	// itself has the broker look again.
	b.disk.check()
	fs.full.Store(true)
	if resp := send(strings.Repeat("b", 4000)); resp.Code != protocol.RespServiceNotAvailable {
		t.Fatalf("send on a full disk: code %d %q, want SERVICE_NOT_AVAILABLE", resp.Code, resp.Remark)
	}
	if code, body := readyz(t, b, ""); code != 200 || !strings.Contains(body, "sends refused: data disk is full") {
		t.Fatalf("/readyz on a full disk: %d %q, want 200 saying sends are refused", code, body)
	}
	if resp := send("c"); resp.Code != protocol.RespServiceNotAvailable || !strings.Contains(resp.Remark, "disk is full") {
		t.Fatalf("send after the disk filled: code %d %q, want SERVICE_NOT_AVAILABLE saying the disk is full", resp.Code, resp.Remark)
	}
	if code, body := readyz(t, b, "?send=1"); code != 503 || !strings.Contains(body, "disk is full") {
		t.Fatalf("/readyz?send=1 on a full disk: %d %q, want 503", code, body)
	}
	waitFor(t, 5*time.Second, "reads on a full disk", func() bool {
		_, recs := c.pull("g", "disk", 0, 0, 0)
		return len(recs) == len(acked)
	})

	fs.full.Store(false)
	freed := time.Now()
	waitFor(t, 3*time.Second, "sends accepted once space is freed", func() bool {
		return send("d").Code == protocol.RespSuccess
	})
	t.Logf("sends accepted %v after space was freed", time.Since(freed).Round(time.Millisecond))
	for range 3 {
		mustOK(t, send("e"))
	}
	if code, body := readyz(t, b, "?send=1"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz?send=1 once space is freed: %d %q", code, body)
	}
	var recs []protocol.Record
	waitFor(t, 5*time.Second, "every acknowledged message", func() bool {
		_, recs = c.pull("g", "disk", 0, 0, 0)
		return len(recs) >= len(acked)
	})
	if len(recs) != len(acked) {
		t.Fatalf("%d messages stored, %d acknowledged", len(recs), len(acked))
	}
	for i, r := range recs {
		if r.QueueOffset != int64(i) || string(r.Body) != acked[i] {
			t.Fatalf("message %d: queue offset %d, body %.10q; want %d, %.10q", i, r.QueueOffset, r.Body, i, acked[i])
		}
	}
}
