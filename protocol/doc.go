// Package protocol is the one catalogue of what crosses Ferry's wire: the
// request and response codes of the RocketMQ remoting protocol (and Ferry's
// own), system topic names and prefixes, message property names, message
// ids, and the record format a pull returns, with its decoder.
//
// The broker, the name server, the SDK and the CLI all import it; it imports
// only the standard library, so an SDK user links no storage engine.
//
// # Records
//
// A pulled message is the stored record as it is (RocketMQ's message
// version V1 layout; the commitlog package documents it field by field).
// Decode checks its structure and both checksums; SealRecord writes the
// fields a store assigns and the checksum.
//
// # Message ids
//
// A message has two ids. The client-made one travels in the UNIQ_KEY
// property and is what consumers see as the message id; it is 32
// upper-case hex digits of 16 bytes, big-endian, the layout of RocketMQ's
// MessageClientIDSetter, which its clients parse:
//
//	+------+------+----------------------------------------------------------+
//	| byte | size | content                                                  |
//	+------+------+----------------------------------------------------------+
//	|    0 | 4    | producer's IPv4 address                                  |
//	|    4 | 2    | producer's process id, low 16 bits                       |
//	|    6 | 4    | random per process (Java: the class loader's hash code)  |
//	|   10 | 4    | ms since the start of the current month, local time,     |
//	|      |      | unsigned (at most 2 678 400 000: it never wraps)         |
//	|   14 | 2    | counter, per process, wraps at 65536                     |
//	+------+------+----------------------------------------------------------+
//
// The time field restarts at 0 every month, so a reader takes it as falling
// in the current month, or the month before if that would put it in the
// future (ParseUniqID).
//
// The broker-made id (OffsetMsgID) locates the stored record: upper-case hex
// of the store host's address (4 or 16 bytes), its port (4 bytes) and the
// record's commitlog offset (8 bytes), 32 or 56 digits.
//
// # Multi-queue batches
//
// FERRY_SEND_MULTI (ReqFerrySendMulti, Ferry's own code) carries messages
// for many queues of one broker, of one or many topics, in one request, so
// a producer batches per broker rather than per queue. Its header has one
// optional extFields key, "a", the producer group. The body is a sequence
// of entries, big-endian, each:
//
//	+-------+-----------------------------------------------------------+
//	| size  | content                                                   |
//	+-------+-----------------------------------------------------------+
//	| 2     | topic length T (at least 1)                               |
//	| T     | topic                                                     |
//	| 4     | queue id (negative: the broker picks one)                 |
//	| 4     | flag                                                      |
//	| 8     | born timestamp, ms                                        |
//	| 4     | body length B                                             |
//	| B     | body                                                      |
//	| 2     | properties length P (RocketMQ's \x01/\x02 property text)  |
//	| P     | properties                                                |
//	+-------+-----------------------------------------------------------+
//
// The broker stores the messages it accepts with one append, in body order
// (so order per queue is the order of the body; messages of topics with a
// dedup window are deduplicated as single sends are, and stored after the
// others), and answers SUCCESS with one result per entry, in the same
// order, in the response body:
//
//	+-------+-----------------------------------------------------------+
//	| size  | content                                                   |
//	+-------+-----------------------------------------------------------+
//	| 2     | this message's code: SUCCESS, FLUSH_DISK_TIMEOUT (stored, |
//	|       | not yet synced) or the code of its error                  |
//	| 4     | queue id                                                  |
//	| 8     | queue offset (0 when not stored)                          |
//	| 2     | text length X                                             |
//	| X     | the broker's message id when stored, else the remark      |
//	+-------+-----------------------------------------------------------+
//
// A message that fails its own checks (unknown or system topic, bad queue,
// too large) fails alone; a failure of the append fails every message the
// append held. A malformed body or a broker not accepting messages fails
// the whole request with a response code, as a send does.
//
// # Brokers' HTTP addresses
//
// A broker that serves HTTP adds Ferry's own extFields key "ferryHttpAddr"
// ("ip:port") to REGISTER_BROKER, and Ferry's name server lists what the
// brokers registered in the GET_BROKER_CLUSTER_INFO body under
// "ferryHttpAddrs", an object from broker address to HTTP address. RocketMQ's
// name servers ignore the key and its clients the field; a broker uses them
// to reach the others' HTTP APIs (GET /v1/cluster).
package protocol
