// Package remoting implements the RocketMQ 4.x "remoting" wire protocol that
// Ferry's broker, name server and SDK share: the frame codec, both header
// serializations, the JSON body types, and connection handling (Server,
// Client, Conn, Mux). The request and response codes are the protocol
// package's.
//
// # Frame
//
// Every message in both directions is one frame. All integers are big-endian.
//
//	+----------------+---------------------------+-------------------------+-------------+
//	| int32 length   | int32 headerWord          | header (headerLen bytes)| body (rest) |
//	+----------------+---------------------------+-------------------------+-------------+
//	length     = 4 + headerLen + bodyLen          (does not count itself)
//	headerWord = serializeType<<24 | headerLen    (headerLen < 2^24)
//	serializeType: 0 = JSON, 1 = ROCKETMQ (binary)
//
// A frame whose length exceeds the configured maximum (16 MiB by default) or
// is shorter than 4 is rejected with ErrFrameTooLarge / ErrMalformedFrame.
//
// # JSON header (serializeType 0)
//
//	{"code":105,"language":"GO","version":317,"opaque":1,"flag":0,"remark":"","extFields":{"topic":"T"}}
//
// code and version are JSON numbers (int16 range), opaque and flag int32,
// extFields a string→string object. Values in extFields are always encoded as
// JSON strings (the Go client rejects anything else); on input numbers and
// booleans are tolerated and kept as their literal text.
//
// The order of extFields members carries no meaning. Ferry writes a typed
// header (SendHeader, PullHeader, SendResponseHeader, ...) in its own fixed
// order, the fields of a decoded request in the order they were read, and a
// map in ascending key order. The requests of the produce and consume paths
// (SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE, FERRY_SEND_MULTI,
// PULL_MESSAGE) are decoded into a list of fields instead of a map; a key
// sent twice counts with its later value, as with a map.
//
// # ROCKETMQ binary header (serializeType 1)
//
//	+-------+--------+-----------------------------------------------+
//	| off   | size   | field                                         |
//	+-------+--------+-----------------------------------------------+
//	| 0     | 2      | int16 code                                    |
//	| 2     | 1      | int8  language (JAVA=0 ... GO=9)              |
//	| 3     | 2      | int16 version                                 |
//	| 5     | 4      | int32 opaque                                  |
//	| 9     | 4      | int32 flag                                    |
//	| 13    | 4      | int32 remarkLen, then remarkLen bytes UTF-8   |
//	| 17+R  | 4      | int32 extLen, then extLen bytes of entries:   |
//	|       |        |   int16 keyLen | key | int32 valLen | value   |
//	+-------+--------+-----------------------------------------------+
//	fixed part (both length words included) = 21 bytes
//
// # Flags and matching
//
// flag bit0 (1) marks a response, bit1 (2) a oneway request. A response
// copies the request's opaque and is written in the request's serialize
// type. Requests of one connection are served concurrently and answers may
// leave out of order; the peer matches them by opaque only.
//
// # Errors on the wire
//
// A frame that cannot be delimited (bad length) or whose header cannot be
// decoded closes the connection, as the Java NettyDecoder does: without a
// decoded header there is no opaque to answer to. Unknown request codes are
// answered with protocol.RespRequestCodeNotSupported by Mux.
//
// # Limits on a server's connections
//
// Server.Serve accepts through a GuardedListener: it backs off on EMFILE
// and other transient accept errors instead of returning, and closes
// connections over the overall or per-address limit at once. A server
// connection is closed after its idle timeout with nothing received and no
// request of it being served, and when a frame started is not complete
// within the read timeout. Logging of these events is rate-limited.
//
// # Signing and TLS
//
// A Client with ClientConfig.Credentials signs every request it sends as
// RocketMQ's ACL clients do (sign.go documents the content): AccessKey and
// Signature (and SecurityToken) become extension fields. Checking them is
// package acl's work, in a Handler in front of the server's Mux. With
// ClientConfig.Authenticate too, each connection is instead authenticated
// once when dialed (FERRY_AUTH, auth.go; protocol's auth.go documents the
// exchange) and its requests go unsigned; a server that does not serve the
// code, or refuses the handshake, gets signed requests on that connection.
// A server connection keeps the handler's authentication state
// (Conn.LoadOrStoreAuth).
// ClientConfig.TLS dials TLS; a server gets TLS from the listener it is
// given (tls.NewListener), and logs a plain-text client on a TLS port.
//
// # Concurrency
//
// Each Conn owns two goroutines: the read loop (decodes frames, dispatches
// requests to handler goroutines from a worker pool, routes responses to
// waiting Invoke calls) and the writer (drains a mutex-guarded queue of
// frames in batches with one writev, woken by a 1-slot doorbell channel; it
// yields once before taking the queue so that answers about to be queued
// ride along). On a server connection over TCP (Linux) a frame queued
// with no write in progress is written by the goroutine queuing it, with
// one writev that never waits for the socket; what the socket does not
// take then, and the answers to a request group, go to the writer, which
// writes them in order under the write timeout. Requests the handler
// declares Inlinable (Inliner) are served on the read loop itself.
// Requests of a Batcher's codes that are already buffered
// together go to one goroutine as a group (a pipelining client's sends). Conn.mu guards the write
// queue, the pending-invoke table and the close state; it is never held while
// doing I/O. Server.mu guards the connection set; lock order is Server.mu
// before Conn.mu (Server never holds its lock while calling into a Conn that
// could call back).
package remoting
