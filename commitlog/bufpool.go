package commitlog

import "sync"

// bufPool keeps the appenders' encoding buffers; one too large to keep
// is dropped.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() *[]byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	if cap(*b) <= 8<<20 {
		bp.p.Put(b)
	}
}
