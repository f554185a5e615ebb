package broker

import (
	"sort"
	"time"
)

// openHalf is a half message no op record has closed yet.
type openHalf struct {
	Offset      int64  // commitlog offset of the half (END_TRANSACTION's commitLogOffset)
	QueueOffset int64  // its offset in the half topic's queue 0
	Group       string // PGROUP: the producer group that can answer a check
	Topic       string // REAL_TOPIC
	QueueID     int32  // REAL_QID
	UniqKey     string // the client's message id (END_TRANSACTION's msgId)
	StoredAt    time.Time
	Checks      int // check-backs sent so far
	// HTTPTx is the id of the HTTP transaction the half belongs to
	// (api_txhttp.go), Expires when that transaction is rolled back if
	// nobody ended it. Such halves are never checked.
	HTTPTx  string
	Expires time.Time
}

// txnTable decides which transactions are open and which of them to check
// or give up on. It is pure: no I/O, no goroutines, no clock of its own;
// the broker feeds it the half and op records it reads (transaction.go).
//
// Op records can be read before their half (on load the op topic is read
// first); closed keeps those until the half arrives.
type txnTable struct {
	open   map[int64]*openHalf
	closed map[int64]bool
}

func newTxnTable() *txnTable {
	return &txnTable{open: make(map[int64]*openHalf), closed: make(map[int64]bool)}
}

// addOp records an op record for the half at off.
func (t *txnTable) addOp(off int64) {
	if _, ok := t.open[off]; ok {
		delete(t.open, off)
		return
	}
	t.closed[off] = true
}

// addHalf records a half read from the half topic; it reports whether the
// half is open (no op record closed it).
func (t *txnTable) addHalf(h openHalf) bool {
	if t.closed[h.Offset] {
		delete(t.closed, h.Offset)
		return false
	}
	if old, ok := t.open[h.Offset]; ok {
		h.Checks = max(h.Checks, old.Checks)
	}
	t.open[h.Offset] = &h
	return true
}

// get returns the open half at off.
func (t *txnTable) get(off int64) (openHalf, bool) {
	h, ok := t.open[off]
	if !ok {
		return openHalf{}, false
	}
	return *h, true
}

// close removes the open half at off, reporting whether it was open.
func (t *txnTable) close(off int64) (openHalf, bool) {
	h, ok := t.open[off]
	if !ok {
		return openHalf{}, false
	}
	delete(t.open, off)
	return *h, true
}

// setChecks sets the check count of the open half at off.
func (t *txnTable) setChecks(off int64, n int) {
	if h, ok := t.open[off]; ok {
		h.Checks = n
	}
}

// due returns, oldest first, the open halves stored at least timeout
// before now: those checked fewer than maxChecks times to check again,
// the others to park.
func (t *txnTable) due(now time.Time, timeout time.Duration, maxChecks int) (check, park []openHalf) {
	for _, h := range t.list() {
		if h.HTTPTx != "" || now.Sub(h.StoredAt) < timeout {
			continue
		}
		if h.Checks >= maxChecks {
			park = append(park, h)
		} else {
			check = append(check, h)
		}
	}
	return check, park
}

// list returns the open halves, oldest first.
func (t *txnTable) list() []openHalf {
	out := make([]openHalf, 0, len(t.open))
	for _, h := range t.open {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

// expired returns the open halves of HTTP transactions whose time ran out
// at now, oldest first.
func (t *txnTable) expired(now time.Time) []openHalf {
	var out []openHalf
	for _, h := range t.list() {
		if h.HTTPTx != "" && !now.Before(h.Expires) {
			out = append(out, h)
		}
	}
	return out
}

// httpTx returns the open halves of HTTP transaction id, oldest first.
func (t *txnTable) httpTx(id string) []openHalf {
	var out []openHalf
	for _, h := range t.list() {
		if h.HTTPTx == id {
			out = append(out, h)
		}
	}
	return out
}
