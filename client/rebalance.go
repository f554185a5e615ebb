package client

import "sort"

// AllocateAveragely is the rebalance strategy: the queues, sorted by
// topic, broker and queue id, are cut into len(clientIDs) contiguous
// ranges as equal as possible (the first len(queues) % len(clientIDs)
// clients get one more), and self gets the range at its position in the
// sorted client ids. It is a pure function: every member computes the same
// split from the same inputs, so no two members own a queue and none is
// left out. A self missing from clientIDs gets nothing. The inputs are not
// modified.
func AllocateAveragely(queues []MessageQueue, clientIDs []string, self string) []MessageQueue {
	if len(queues) == 0 || len(clientIDs) == 0 {
		return nil
	}
	ids := append([]string(nil), clientIDs...)
	sort.Strings(ids)
	idx := -1
	for i, id := range ids {
		if id == self {
			idx = i
			break
		}
	}
	if idx < 0 {
		return nil
	}
	qs := append([]MessageQueue(nil), queues...)
	sortQueues(qs)
	n, k := len(qs), len(ids)
	size, extra := n/k, n%k
	start := idx*size + min(idx, extra)
	if idx < extra {
		size++
	}
	if size == 0 {
		return nil
	}
	return qs[start : start+size]
}
