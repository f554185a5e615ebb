// Package commitlog is Ferry's shared, segmented, append-only message log.
//
// Every topic of a broker appends to the same log, so writes stay sequential
// however many topics there are. Consume queues, the key index and the timer
// index are derived from it; the log is the only source of truth.
//
// # Segments
//
// The log is a sequence of segment files of equal size (default 1 GiB), each
// named by the global byte offset of its first record, zero-padded to 20
// digits (00000000001073741824). Offsets are global: segment i covers
// [i*size, (i+1)*size). A record never spans two segments: when the next
// record does not fit, the appender writes a blank marker (total size = the
// rest of the segment, magic BlankMagic) and continues in a new segment. At
// least BlankMarkerSize bytes are always left for that marker.
//
// # Record format
//
// A record is RocketMQ's stored message layout (message version V1), byte for
// byte, so a pull can send stored bytes as they are. All integers big-endian.
//
//	+------+-----------------------------+---------+-----------------------------------------+
//	| off  | field                       | size    | content                                 |
//	+------+-----------------------------+---------+-----------------------------------------+
//	|    0 | TOTALSIZE                   | 4       | record length including this field      |
//	|    4 | MAGICCODE                   | 4       | 0xDAA320A7 (MessageMagic)               |
//	|    8 | BODYCRC                     | 4       | CRC-32 (IEEE) of the stored body        |
//	|   12 | QUEUEID                     | 4       |                                         |
//	|   16 | FLAG                        | 4       | producer flag                           |
//	|   20 | QUEUEOFFSET                 | 8       | logical offset in (topic, queue)        |
//	|   28 | PHYSICALOFFSET              | 8       | global offset of this record            |
//	|   36 | SYSFLAG                     | 4       | 0x10: born host IPv6, 0x20: store IPv6  |
//	|   40 | BORNTIMESTAMP               | 8       | producer clock, ms                      |
//	|   48 | BORNHOST                    | 8 | 20  | IPv4 (4) or IPv6 (16), then int32 port  |
//	|      | STORETIMESTAMP              | 8       | broker clock, ms, monotonic in the log  |
//	|      | STOREHOST                   | 8 | 20  | as BORNHOST                             |
//	|      | RECONSUMETIMES              | 4       |                                         |
//	|      | PREPARED_TRANSACTION_OFFSET | 8       |                                         |
//	|      | BODYLEN, BODY               | 4 + B   | body as received (zlib if SYSFLAG&1)    |
//	|      | TOPICLEN, TOPIC             | 1 + T   | T <= 127                                |
//	|      | PROPLEN, PROPERTIES         | 2 + P   | signed int16, P <= 32767                |
//	+------+-----------------------------+---------+-----------------------------------------+
//
// Properties are "key\x01value\x02key\x01value\x02...". The last property of
// every stored record is the record checksum, the convention of RocketMQ 5's
// appended-CRC property:
//
//	... \x02 __CRC32# \x01 dddddddddd \x02
//
// where dddddddddd is the decimal, zero-padded CRC-32 (IEEE) of every byte of
// the record before those ten digits. It covers the header fields assigned at
// append time (offsets, store time), so recovery can tell a complete record
// from a torn or corrupted one. Clients see it as an ordinary property.
//
// A blank marker is TOTALSIZE (the rest of the segment) followed by
// BlankMagic; nothing after it in that segment is data.
//
// # Durability
//
// Appends are serialised by one lock: a batch is encoded outside it, then
// offsets are assigned, patched in, checksummed and written with one pwrite
// under it. In async flush mode an append returns once its bytes are in the
// page cache, and a flusher goroutine fdatasyncs every FlushInterval or when
// FlushDirtyBytes are waiting. In sync flush mode appenders wait for a group
// commit: the flusher takes everything written so far, fdatasyncs once, and
// releases every appender that round covered.
//
// A checkpoint file records an offset below which every record is synced and
// valid, with the next queue offset of every (topic, queue) at that point.
// Open scans only from the checkpoint, keeps every complete record whose
// length and checksum are valid, and cuts the log at the first one that is
// not. Without a usable checkpoint it scans the whole log.
//
// The first write or sync error is sticky: every later append fails with it
// (wrapped in ErrReadOnly) while reads go on. A write that finds the disk
// full (ENOSPC) is the exception: it fails with ErrNoSpace, what it got onto
// the disk is zeroed, its offsets and any segment created for it are given
// back, and the next append tries again, so the log takes writes as soon as
// there is room (NoSpace reports the state in between).
package commitlog
