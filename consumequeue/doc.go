// Package consumequeue holds Ferry's consume queues: one fixed-width index
// per (topic, queue) over the shared commitlog, and the dispatcher that
// builds them by tailing the log.
//
// # Layout
//
// A queue lives in <Dir>/<topic>/<queueId>/ as files of EntriesPerFile
// entries (default 300,000: 6,000,000 bytes). Entry n sits at byte n*20 of
// the queue, so file k holds entries [k*EntriesPerFile, (k+1)*EntriesPerFile)
// and is named by the byte offset of its first entry within the queue,
// zero-padded to 20 digits (00000000000006000000 is the second file). A
// topic made only of RocketMQ's topic characters [%|a-zA-Z0-9_-] names its
// directory as it is; any other topic is "~" followed by its hex encoding.
// Each entry, big-endian:
//
//	+-----+-----------------+------+---------------------------------------------+
//	| off | field           | size | content                                     |
//	+-----+-----------------+------+---------------------------------------------+
//	|   0 | commitlog offset | 8   | global offset of the record                 |
//	|   8 | size            | 4    | record size in bytes (0: a hole, no entry)  |
//	|  12 | tags code       | 8    | Java String.hashCode of the TAGS property,  |
//	|     |                 |      | over UTF-16, sign-extended; 0 without a tag |
//	+-----+-----------------+------+---------------------------------------------+
//
// A queue's max offset is the number of entries in it (from the size of
// its last file, ignoring trailing all-zero entries). Its min offset is the
// first entry whose record the log still keeps.
//
// <Dir>/dispatch.checkpoint (written whole to a temporary file, synced,
// renamed, the directory synced) records the log offset below which every
// record's entry is in a synced file, and the offset below which every
// listener has made its work durable; see checkpoint in format.go.
//
// # Dispatch
//
// One dispatcher goroutine, owned by the Store and stopped by Close, waits
// on the log's Watch signal and scans the log from its position up to
// VisibleOffset (the flushed offset in sync-flush mode, so it never indexes
// what a crash could take back), in batches of up to 4096 records or
// 4 MiB. For each record it stages entry number QueueOffset (taken from the
// record, so re-dispatching the same records rewrites the same bytes). At
// the end of a batch each touched queue's staged entries are appended to
// its in-memory tail in one step, under the queue lock, and the queue's
// Notify channel (if anyone asked for one) is closed once, and then
// Options.OnNotify is called for it: no channel operation and no system
// call per entry. Readers see entries from the tail or the files as soon
// as the batch ends. A tail is written to its file with one positional
// write when it reaches 4 KiB, and at a flush.
//
// When the source offers WatchFunc (a commitlog.Log does), the goroutine
// that advanced the log's visible end (in async mode the appender that
// wrote the records) dispatches them itself right after, if the dispatch
// lock is free (pump): at low rates the entries, and the held pulls that
// OnNotify answers, then need no dispatcher wake-up. The dispatcher is rung
// only when the lock is taken, the store is failing or waiting out a full
// disk, or more is left than two batches; the flushes are its own.
//
// Every FlushInterval (and at Close) the dispatcher flushes: a queue with
// at least SyncBytes unsynced bytes, or unsynced for MaxSyncDelay, gets its
// tail written and its files fdatasync'ed; new directories are synced; then
// the checkpoint is the dispatch position, lowered to the oldest record
// whose entry may still be unsynced. Idle queues thus cost no fsync per
// flush, and a restart re-dispatches at most MaxSyncDelay of log.
//
// Listeners (the key index, the timer index) are fed by a second
// goroutine, the feeder, which the dispatcher rings after each batch: it
// scans the log itself from each listener's position up to the queues'
// position, so a listener sees a record only after its entry is visible,
// and a slow listener (a pebble commit waiting on its write-ahead log)
// never delays the queues or the pulls held on them. A listener that fails
// stays at its position and is fed from there at the next tick: nothing is
// lost.
//
// # Listener durability contract
//
// Each listener has two points in the log: its position (every record
// below it was dispatched to it) and its durable point (every record below
// it survives a crash in the listener's own store). Dispatch need not sync;
// the feeder calls Listener.Sync once ListenerSyncBytes of log were
// dispatched since the last sync or the oldest of them has waited
// ListenerSyncInterval (a ticker covers an idle log), and at Open and
// Close; only when Sync returns nil does the durable point move, to the
// position the listener had when Sync was called. The checkpoint's
// listener offset is the minimum of the queues' durable point and every
// listener's durable point, so it never passes work a crash could take
// back; Open feeds every listener again from that offset. A listener is
// thus fed some records twice after a crash (or after a failed Sync,
// before a restart) and must be idempotent: feeding a record it already
// holds, or one it already acted on, must leave it as one feeding would.
//
// # Recovery
//
// Open loads every queue file, drops each queue's trailing entries that are
// zero or point past the log's WrittenOffset (after a crash the log may be
// shorter than the index), then dispatches from the checkpoint (clamped to
// the log's range; the whole log without one) to the visible end before it
// returns. Deleting every queue file and the checkpoint therefore rebuilds
// the queues from the log. Open the store after the log has recovered and
// before appends resume.
//
// # Concurrency
//
// Lock order: Store.writeMu, then feeder.mu, then Store.mu, then
// queue.mu; progress.mu is a leaf.
//
//   - writeMu serialises everything that changes files or the queue set:
//     dispatch batches, flushes, DeleteTopic, TrimBefore, Close. It owns
//     the dispatch position and the queueWriter (the staging buffers and
//     the dirty lists). It is released between batches.
//   - feeder.mu serialises feeding the listeners: the feeder, and the drains
//     at Open and Close (which hold writeMu too). It guards the feeder's
//     scan buffers and the listeners' failed flags; their positions are
//     atomic, so a flush reads them without waiting for a slow listener.
//   - mu guards the topic/queue maps and the waiters of queues that do not
//     exist yet. Every change holds writeMu too, so the dispatcher reads
//     the maps holding writeMu alone.
//   - queue.mu guards a queue's files slice, low/max/fileEnd, tail and
//     notify channel. Readers hold it shared while they read files or the
//     tail; files are closed only with it held exclusively.
//
// The first write or sync error is sticky: the dispatcher stops (Err
// returns it) while reads go on.
package consumequeue
