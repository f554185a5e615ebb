// Package replica is the data plane of a replicated broker group:
// commitlog shipping from the master to its slaves. A slave receives the
// master's commitlog bytes and writes them at the same offsets, so its log
// is a byte-for-byte prefix of the master's; it runs its own dispatcher and
// acknowledges what it has written and flushed. There is no consensus per
// message: who the master is, its epoch and the in-sync set come from the
// control plane (package controller).
//
// This package holds the protocol, the master's side (Sender), which
// reads whole records from the commitlog straight into each frame's buffer
// (ReadRecords: one pread, no copy; sendfile from the segment file would
// save the last one), and the slave's side (Receiver), which keeps one stream
// open to the master, reconnecting with back-off, writes each DATA frame
// into its own commitlog with AppendRaw (every record checked, segments
// rolled where the master's blank marker says) and acks the written and
// flushed offsets. The broker (package broker, replication.go) runs one or the other
// according to the role the control plane gives it.
//
// # The slave's side
//
// The receiver says in HELLO the group epoch the control plane gave it and
// the last epoch of its history (-1 if empty), cuts its log as EPOCH_END
// says (Truncate also drops the history entries from the cut on), and
// fetches from its end. A DATA frame must start exactly at its end; its
// epoch must not be above the stream's, nor below the last epoch of its
// history (an older term's bytes after a newer term's: ERROR stale-epoch);
// the first bytes of a newer epoch add an entry to the history, durably,
// before they are written. An idle frame must carry the stream's epoch.
// ACKs follow every write (coalesced) and every ack interval. A COMMIT
// read together with the DATA frames behind it (the master sends it in
// the same write as the next frame) is applied once they are written and
// acked: the ACK an acks=all send waits for does not wait for the slave's
// dispatch of what was committed before. The flushed
// offset is the log's, which only advances after an fsync; with flushed
// acks required the receiver syncs before acking. A stream silent for the
// dead timeout is dropped and dialled again.
//
// # Connection
//
// A slave dials its master's replication port and the two exchange frames:
//
//	slave                                  master
//	  HELLO(epoch, last epoch, id, group) →
//	                                     ← EPOCH_END(epoch, end, start)   or ERROR
//	  (truncates its log, see below)
//	  FETCH(from)                         →
//	                                     ← DATA(epoch, start, bytes) ...   or ERROR
//	                                     ← COMMIT(epoch, offset) ...
//	  ACK(epoch, written, flushed) ...    →
//
// HELLO carries the group epoch the slave knows: the master refuses a
// different one (ERROR stale-epoch), which fences a deposed master as much
// as a stale slave. It also carries the epoch of the last entry of the
// slave's epoch history.
//
// EPOCH_END answers with the largest epoch of the master's history not
// above the slave's last epoch, and the offset where the master's log
// stops holding that epoch (where the next epoch starts, or the master's
// end). The slave truncates its log to the smaller of that offset and the
// end of that epoch in its own history, and fetches from there: whatever it
// holds beyond was never on this master and was never committed (Kafka
// KIP-101/279). Epoch -1 means the master has nothing in common with the
// slave's history: it truncates to the offset given. The start offset is
// the master's oldest kept offset (a segment's base): a slave whose log
// ends before it is too far behind and starts over there, with an empty
// log.
//
// FETCH names the offset to stream from: the start of a record, or of a
// segment. It must lie within the master's kept log (ERROR out-of-range
// otherwise).
//
// DATA frames then follow as the master's log grows, each holding whole
// records, never spanning two segments or two epochs; Epoch is the epoch the
// bytes were written in. A frame that ends a segment ends with its blank
// marker, and the next frame starts at the following segment's base. While
// there is nothing to send, the master sends an empty DATA frame (start =
// the slave's next offset, epoch = the master's current one) every idle
// interval, so a slave can tell a live master from a dead one.
//
// COMMIT frames, interleaved with DATA, tell the slave the group's commit
// offset: what every member of the in-sync set holds. The slave dispatches
// (to its consume queues and every other reader of its log) nothing past
// it, so a consumer reading from a slave never sees a message a failover
// could take back. The master sends one whenever the commit offset has
// grown since the last it sent, never beyond the bytes it has sent on the
// stream; a COMMIT beyond the slave's end is a protocol error.
//
// ACK frames report the slave's written and flushed offsets, at any time
// after FETCH; the master counts them towards the in-sync set and the
// commit point. Either side ends the stream with ERROR (a code and a
// reason) and closes the connection. The master ends every stream when its
// epoch changes.
//
// # Frames
//
// All integers big-endian; every frame is a length and a type, then the
// fields of the type (part of the format):
//
//	+------+------+-----------------------------------------------+
//	| off  | size | field                                         |
//	+------+------+-----------------------------------------------+
//	|    0 |    4 | LENGTH: bytes after this field                |
//	|    4 |    1 | TYPE                                          |
//	|    5 |  ... | fields                                        |
//	+------+------+-----------------------------------------------+
//
//	type           fields after TYPE
//	1 HELLO        version u16, epoch i64, last epoch i64, replica id i64,
//	               cluster (len u8, bytes), broker name (len u8, bytes)
//	2 EPOCH_END    epoch i64, end offset i64, start offset i64
//	3 FETCH        from i64
//	4 DATA         epoch i64, start offset i64, bytes (LENGTH - 17)
//	5 ACK          epoch i64, written offset i64, flushed offset i64
//	6 ERROR        code u16, reason (LENGTH - 3 bytes of UTF-8)
//	7 COMMIT       epoch i64, commit offset i64
//
// LENGTH is at most MaxFrameLength; a larger one is a protocol error.
package replica
