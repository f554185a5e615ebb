// Package layout is Ferry's storage-layout benchmark: it drives Ferry's
// shared commitlog and the Kafka-style per-partition baseline
// (bench/kafkalayout) with the same load while the number of topics grows,
// and reports write and consume throughput, append latency, bytes written
// to disk and open files per point, as a Markdown table and a chart.
//
// Run is the library entry point; Main is the `ferry bench layout` command.
//
// # The load
//
// For every point, Producers goroutines append batches of Batch records of
// MessageSize-byte bodies, each batch to the next (topic, queue) of
// Topics × Queues in turn, until BytesPerPoint of records are stored or
// MaxDuration has passed; each append call is timed into an HDR histogram.
// Consumers goroutines share the queues among themselves and read what has
// become visible (flushed data in sync mode) 32 records at a time while the
// producers run, then drain the rest. Queues and partitions are created
// before the clock starts, as topic creation would.
//
// The Ferry side is the broker's consume path: the commitlog, the consume
// queues (package consumequeue) its dispatcher builds from it, and reads
// that look entries up in a queue and fetch the records from the log with
// one pread per run of adjacent records. The baseline's reads are a
// Kafka fetch: a sparse-index lookup, then a scan of the partition's log.
//
// # Goroutines
//
// Run owns every goroutine it starts (producers and consumers) and waits
// for them; each store's own goroutines stop in its Close.
package layout
