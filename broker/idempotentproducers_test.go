package broker

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
	"github.com/ferrymq/ferry/remoting"
)

// logSender is the send path reduced to the log: it appends and answers
// success or the error's code.
type logSender struct{ clog *commitlog.Log }

func (l logSender) appendMessages(msgs []commitlog.Message, answer func(res []commitlog.AppendResult, err error)) {
	res, err := l.clog.Append(msgs, nil)
	if len(res) != len(msgs) {
		res = nil
	}
	answer(res, err)
}

func (l logSender) sendResponse(req *remoting.Command, _ []commitlog.Message, res []commitlog.AppendResult, err error) *remoting.Command {
	if res == nil {
		code, remark := sendError(err)
		return remoting.NewResponse(req, code, remark)
	}
	return remoting.NewResponse(req, protocol.RespSuccess, "")
}

// producers builds idempotent producers over the stores and loads them.
func (st *eosStores) producers(t *testing.T) *idempotentProducers {
	t.Helper()
	cfg := DefaultConfig()
	s := newIdempotentProducers(st.dedupWindows(t, 0), nil, func() *Config { return &cfg })
	s.send = logSender{st.clog}
	s.repl = &replication{}
	if err := s.load(); err != nil {
		t.Fatal(err)
	}
	return s
}

// storeIdem stores one message of producer p at epoch and seq in queue
// t/0 and returns the answer's code and whether it says duplicate.
func storeIdem(s *idempotentProducers, p string, epoch int32, seq int64) (int16, bool) {
	m := commitlog.Message{Topic: "t", Body: []byte("m"), StoreHost: testStoreHost, BornHost: testStoreHost,
		Properties: protocol.EncodeProperties(idemProps(p, epoch, seq))}
	req := remoting.NewRequest(protocol.ReqSendMessage, map[string]string{"topic": "t", "queueId": "0"}, m.Body)
	resp := s.store(req, []commitlog.Message{m}, producerFields{pid: p, epoch: epoch, seq: seq})
	return resp.Code, resp.StringOr("duplicate", "") == "true"
}

func TestIdempotentProducersRefuseStaleEpochAndGap(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	s := st.producers(t)
	s.raiseEpoch("p", 1)
	if code, dup := storeIdem(s, "p", 1, 0); code != protocol.RespSuccess || dup {
		t.Fatalf("first send: code %d duplicate %v", code, dup)
	}
	end := st.clog.WrittenOffset()
	if code, dup := storeIdem(s, "p", 1, 0); code != protocol.RespSuccess || !dup {
		t.Fatalf("retry: code %d duplicate %v, want success as a duplicate", code, dup)
	}
	if code, _ := storeIdem(s, "p", 1, 2); code != protocol.RespOutOfOrderSequence {
		t.Fatalf("a sequence gap answers %d, want %d", code, protocol.RespOutOfOrderSequence)
	}
	if code, _ := storeIdem(s, "p", 0, 1); code != protocol.RespProducerFenced {
		t.Fatalf("a stale epoch answers %d, want %d", code, protocol.RespProducerFenced)
	}
	if st.clog.WrittenOffset() != end {
		t.Fatal("a refused or repeated send was stored")
	}
	s.raiseEpoch("p", 2)
	if code, _ := storeIdem(s, "p", 1, 1); code != protocol.RespProducerFenced {
		t.Fatalf("the epoch before a newer grant answers %d, want %d", code, protocol.RespProducerFenced)
	}
	if ps := s.states(); len(ps) != 1 || ps[0].ID != "p" || ps[0].Epoch != 2 || len(ps[0].Queues) != 1 || ps[0].Queues[0].LastSeq != 0 {
		t.Fatalf("producer states %+v", ps)
	}
}

func TestIdempotentProducersSnapshotReload(t *testing.T) {
	st := openEOSStores(t, vfs.NewMem())
	s := st.producers(t)
	s.raiseEpoch("p", 1)
	for seq := range int64(3) {
		if code, _ := storeIdem(s, "p", 1, seq); code != protocol.RespSuccess {
			t.Fatalf("send %d: code %d", seq, code)
		}
	}
	if err := s.snapshot(time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, _ := storeIdem(s, "p", 1, 3); code != protocol.RespSuccess { // after the snapshot: replayed
		t.Fatalf("send 3: code %d", code)
	}
	// A new table from the snapshot and the log after it knows every send.
	s2 := st.producers(t)
	for seq := range int64(4) {
		if code, dup := storeIdem(s2, "p", 1, seq); code != protocol.RespSuccess || !dup {
			t.Fatalf("retry of %d after reload: code %d duplicate %v", seq, code, dup)
		}
	}
	if code, dup := storeIdem(s2, "p", 1, 4); code != protocol.RespSuccess || dup {
		t.Fatalf("the next send after reload: code %d duplicate %v", code, dup)
	}
}
