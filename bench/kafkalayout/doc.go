// Package kafkalayout is the baseline of Ferry's layout benchmark: a
// Kafka-style store with one log per (topic, partition), built with the same
// care as Ferry's shared commitlog so that the comparison measures the
// layout and nothing else.
//
// It stores the same records as package commitlog (RocketMQ's stored message
// layout, byte for byte, with the trailing __CRC32# checksum property), takes
// the same batches, and offers the same two flush policies. What differs is
// where the bytes go: every partition appends to its own files, so N busy
// partitions mean N write streams and, in sync mode, N fdatasyncs.
//
// # Files
//
//	<Dir>/
//	  LOCK                          held while the store is open
//	  <topic>-<partition>/          one directory per (topic, partition)
//	    00000000000000000000.log    segment: records, named by the first
//	    00000000000000000000.index  message offset it holds (20 digits)
//	    00000000000000004711.log
//	    00000000000000004711.index
//
// A segment holds whole records back to back from byte 0; there is no blank
// marker (a partition's segments are separate files, so nothing needs to
// fill a tail). A new segment starts when the next record would take the
// active one past SegmentSize. In a record, QUEUEOFFSET is the message's
// offset in the partition (dense, from 0) and PHYSICALOFFSET the record's
// byte position in its segment file.
//
// # Offset index
//
// Each segment has a sparse index, like Kafka's: an entry for the first
// record at or after every IndexInterval bytes of the segment. Part of the
// format, big-endian:
//
//	+--------+------+------------------------------------------------+
//	| off    | size | content                                        |
//	+--------+------+------------------------------------------------+
//	|      0 | 4    | message offset minus the segment's base offset |
//	|      4 | 4    | byte position of that record in the .log file  |
//	+--------+------+------------------------------------------------+
//
// The index is kept in memory and written to its file in 4 KiB pieces; it is
// synced when its segment is rolled and at Close, never in the append path.
// It is derived data: recovery rebuilds the active segment's index from its
// log, and reading a partition looks up the largest entry at or below the
// wanted offset and scans forward from there.
//
// # Durability
//
// Every partition has its own append lock and its own group commit. In sync
// mode an appender writes its batch with one pwrite, picks up the
// partition's current round, queues the partition for syncing if it is not
// queued yet, and waits; one of SyncWorkers goroutines takes the partition,
// swaps its round under the partition lock, fdatasyncs the segment once and
// releases every appender of that round. A flush round therefore costs one
// fdatasync per dirty partition file, which is the point of the comparison;
// the workers issue those syncs concurrently so the device and the file
// system can overlap them. In async mode an append returns once its bytes are
// in the page cache, and every FlushInterval (or once FlushDirtyBytes are
// waiting) every dirty partition is queued for the same workers.
//
// Rolling a segment syncs the old segment and its index before the new file
// is created (and the directory synced), so a crash never leaves durable
// data after a hole. Open recovers every partition by scanning its active
// segment, keeping complete records whose length, position and checksums
// are valid and cutting the file at the first one that is not.
//
// The first write or sync error is sticky: later appends fail with it,
// wrapped in ErrReadOnly.
package kafkalayout
