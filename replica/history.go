package replica

import "github.com/ferrymq/ferry/controller"

// History is a replica's epoch history: from each entry's StartOffset on,
// its log holds what the master of that epoch wrote. Entries are in
// increasing order of epoch and of start offset.
type History []controller.EpochEntry

// EndOf answers an EPOCH_END for a slave whose history ends in epoch: the
// largest epoch of h not above it, and where h stops holding that epoch
// (the next entry's start, or end for the last entry). With no such epoch
// it returns -1 and the start of h's first entry (end if h is empty).
func (h History) EndOf(epoch, end int64) (int64, int64) {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Epoch <= epoch {
			if i+1 < len(h) {
				return h[i].Epoch, h[i+1].StartOffset
			}
			return h[i].Epoch, end
		}
	}
	if len(h) > 0 {
		return -1, h[0].StartOffset
	}
	return -1, end
}

// At returns the epoch the bytes at off were written in and where that
// epoch ends in h (the next entry's start, or -1 for the last entry). An
// offset before the first entry has epoch -1.
func (h History) At(off int64) (epoch, next int64) {
	epoch, next = -1, -1
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].StartOffset <= off {
			return h[i].Epoch, next
		}
		next = h[i].StartOffset
	}
	return epoch, next
}

// Valid reports whether epochs and start offsets increase.
func (h History) Valid() bool {
	for i := 1; i < len(h); i++ {
		if h[i].Epoch <= h[i-1].Epoch || h[i].StartOffset < h[i-1].StartOffset {
			return false
		}
	}
	return true
}
