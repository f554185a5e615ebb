package kafkalayout

import (
	"github.com/ferrymq/ferry/commitlog"
	"github.com/ferrymq/ferry/protocol"
)

// The record encoder: commitlog's own, so both layouts store identical
// records.

func appendRecord(dst []byte, m *commitlog.Message, size int) []byte {
	return commitlog.AppendRecord(dst, m, size)
}

func sealRecord(rec []byte, queueOffset, physical, storeTs int64) {
	protocol.SealRecord(rec, queueOffset, physical, storeTs)
}

// minRecordSize is the smallest stored record: IPv4 hosts, an empty body,
// topic and properties (see the format table in commitlog's doc).
const minRecordSize = 91
