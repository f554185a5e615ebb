package consumequeue

import "testing"

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestProgress(t *testing.T) {
	var p progress
	p.wake() // nobody waits: nothing to close
	a, b := p.next(), p.next()
	if a != b {
		t.Fatal("two waiters before a wake got different channels")
	}
	if closed(a) {
		t.Fatal("the channel is closed before a wake")
	}
	p.wake()
	if !closed(a) {
		t.Fatal("wake did not close the waiters' channel")
	}
	c := p.next()
	if c == a || closed(c) {
		t.Fatal("a waiter after the wake got the closed channel")
	}
	p.wake()
	if !closed(c) {
		t.Fatal("the second wake did not close the new channel")
	}
}
