package broker

import (
	"strconv"
	"testing"

	"github.com/ferrymq/ferry/protocol"
)

// The one-pass reading of the producer properties agrees with
// protocol.Property and strconv on any input.
func FuzzProducerProps(f *testing.F) {
	f.Add([]byte("__PID\x01p\x02__PEPOCH\x013\x02__PSEQ\x0142"))
	f.Add([]byte("UNIQ_KEY\x01k\x02__PID\x01p\x02__PID\x01q\x02__PEPOCH\x01+1\x02__PSEQ\x01-1"))
	f.Add([]byte("__PSEQ\x0199999999999999999999\x02__PID\x01\x02\x02__PEPOCH"))
	f.Fuzz(func(t *testing.T, props []byte) {
		pid, es, ss, ok := producerProps(props)
		wantPid, wantOK := protocol.Property(props, protocol.PropProducerID)
		if ok != wantOK || string(pid) != wantPid {
			t.Fatalf("pid %q %v, want %q %v", pid, ok, wantPid, wantOK)
		}
		wantE, _ := protocol.Property(props, protocol.PropProducerEpoch)
		wantS, _ := protocol.Property(props, protocol.PropProducerSeq)
		if string(es) != wantE || string(ss) != wantS {
			t.Fatalf("epoch %q seq %q, want %q %q", es, ss, wantE, wantS)
		}
		n, nok := parseNonNegative(ss)
		m, err := strconv.ParseUint(wantS, 10, 63)
		digits := len(wantS) > 0 && wantS[0] != '+'
		if nok != (err == nil && digits) || nok && uint64(n) != m {
			t.Fatalf("parse %q: %d %v, strconv %d %v", ss, n, nok, m, err)
		}
		f2, ok2, err2 := parseProducerFields(props)
		if ok2 != ok || (err2 == nil) != (!ok || len(pid) > 0 && len(pid) <= maxProducerIDLen && nok && func() bool {
			e, eok := parseNonNegative(es)
			return eok && e <= 1<<31-1
		}()) {
			t.Fatalf("fields %+v %v %v", f2, ok2, err2)
		}
	})
}
