package commitlog

import "sync"

// tailCacheSize is how many of the last bytes written the log keeps in
// memory.
const tailCacheSize = 4 << 20

// tailCache keeps a copy of the last bytes written to the log, so that
// the readers of its end (the consume-queue dispatcher scanning what was
// just appended, the pulls of consumers that keep up) copy from memory
// instead of making a pread each: at low rates two system calls per
// message fewer.
//
// It holds the log's bytes [start, end), at most len(buf) of them, in a
// ring. The writing leader adds each chunk after writing it to its
// segment, before the write is published: a reader, bounded by the
// published end, finds there only bytes that are also in the file. A write
// that does not continue the held range (a new segment, a replica's raw
// write) starts it afresh; a failed write, a replica's reset or truncation
// empties it.
type tailCache struct {
	mu         sync.RWMutex
	buf        []byte // allocated on the first put
	start, end int64
}

// put records that b was written at off.
func (t *tailCache) put(off int64, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf == nil {
		t.buf = make([]byte, tailCacheSize)
	}
	size := int64(len(t.buf))
	if n := int64(len(b)); n > size {
		off += n - size
		b = b[n-size:]
	}
	if off != t.end {
		t.start, t.end = off, off
	}
	for len(b) > 0 {
		i := t.end % size
		n := copy(t.buf[i:], b)
		b = b[n:]
		t.end += int64(n)
	}
	t.start = max(t.start, t.end-size)
}

// get fills p with the bytes at off if they are all held.
func (t *tailCache) get(p []byte, off int64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if off < t.start || off+int64(len(p)) > t.end || len(p) == 0 {
		return false
	}
	size := int64(len(t.buf))
	for len(p) > 0 {
		i := off % size
		n := copy(p, t.buf[i:])
		p = p[n:]
		off += int64(n)
	}
	return true
}

// reset empties the cache; the next put starts it at its offset.
func (t *tailCache) reset() {
	t.mu.Lock()
	t.start, t.end = 0, 0
	t.mu.Unlock()
}
