package remoting

import (
	"slices"
	"sync/atomic"
)

// Encoding a header writes its extFields in ascending key order, so the
// output is deterministic. Requests of one code nearly always carry the same
// key set (a SEND_MESSAGE_V2 from one client has the same eleven fields every
// time), so the sorted order is remembered per (code, number of keys) and
// only checked on later requests: every remembered key must be present,
// which with equal counts means the key sets are equal. A miss sorts and
// replaces the slot; the output is the same either way.

const keyOrderSlots = 1024

type keyOrder struct {
	code int16
	keys []string // sorted, distinct; never modified once published
}

var keyOrders [keyOrderSlots]atomic.Pointer[keyOrder]

func keyOrderSlot(code int16, n int) *atomic.Pointer[keyOrder] {
	return &keyOrders[(uint(uint16(code))*31+uint(n))%keyOrderSlots]
}

// orderedKeys returns m's keys in ascending order. The result is either a
// remembered slice (read only) or one appended to scratch.
func orderedKeys(scratch []string, code int16, m map[string]string) []string {
	n := len(m)
	if n == 0 {
		return nil
	}
	slot := keyOrderSlot(code, n)
	if o := slot.Load(); o != nil && o.code == code && len(o.keys) == n && hasAll(m, o.keys) {
		return o.keys
	}
	keys := appendSortedKeys(scratch, m)
	slot.Store(&keyOrder{code: code, keys: slices.Clone(keys)})
	return keys
}

func hasAll(m map[string]string, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			return false
		}
	}
	return true
}
