// Package client is Ferry's Go SDK: a Producer, a PushConsumer and a
// PullConsumer that speak either the RocketMQ remoting protocol (through
// the name servers) or a broker's HTTP API, chosen by the endpoint:
//
//	"127.0.0.1:9876"                  one name server, remoting transport
//	"127.0.0.1:9876;127.0.0.1:9877"   several name servers
//	"http://127.0.0.1:8080"           one broker's HTTP API
//
// Every client is configured with functional options (WithGroup,
// WithLinger, WithOrderly, ...), validated in one place when the client is
// built; the caller's values are copied, never modified. Logging goes to an
// injected Logger (WithLogger); by default nothing is logged. Options are
// typed by the clients that take them (CommonOpt for all, ProducerOpt,
// ConsumerOpt, PushOpt): a producer option passed to a consumer, or a push
// consumer's option passed to a pull consumer, does not compile.
//
// A broker's error answer is a *ServerError with the wire code, over both
// transports; errors.Is tells its class (ErrTopicNotFound,
// ErrPermissionDenied, ErrUnavailable, ErrThrottled, ...). The operator's
// client is package client/admin.
//
// Against brokers and name servers with an ACL file, WithCredentials signs
// every remoting request as RocketMQ's clients do (and sends HTTP Basic
// credentials on the HTTP transport); WithTLS connects with TLS. The
// endpoint "https://host:port" uses the HTTP API over TLS.
//
// # Goroutines
//
// Each client owns its goroutines and stops them in Close, which returns
// only when they are gone:
//
//	Producer      route refresh (remoting), one goroutine per request in
//	              flight (SendAsync's batches per broker: at most
//	              WithMaxInFlight per broker), the per-queue linger flusher
//	              (WithLinger over HTTP and for idempotent producers)
//	PushConsumer  route refresh + heartbeat, rebalance, offset commit,
//	              one pull loop per owned queue, the consume workers
//	PullConsumer  route refresh (remoting)
//
// On the remoting transport a consumer uses two connections per broker:
// one for long polls (PULL_MESSAGE suspended up to 20 s) and one for
// everything else, so a parked pull never delays a heartbeat, an offset
// commit or a send-back.
//
// # Batching (Producer)
//
// Over the remoting protocol SendAsync batches by itself, per broker: a
// message waits only while a request to its broker is in flight, then
// leaves with everything that waited, whatever its topic or queue, in one
// FERRY_SEND_MULTI request (the protocol package documents it). At low
// rates nothing waits; under load batches grow up to WithBatchSize and
// WithMaxBatchBytes. WithLinger adds a bounded wait, WithMaxInFlight allows
// more requests per broker at once (1 keeps each queue's order), and
// WithMaxBufferedBytes bounds what waits or is in flight: SendAsync then
// blocks until its context ends, or fails at once with
// WithFailWhenBufferFull.
//
// # Offsets and retries (PushConsumer)
//
// A queue's committed offset is the smallest offset still being consumed
// (or one past the last pulled message when nothing is in flight), so a
// crash redelivers but never skips. A message whose handler fails is sent
// back to the broker (CONSUMER_SEND_MSG_BACK), which redelivers it through
// %RETRY%<group> at delay level 3+reconsumeTimes; if the broker refuses,
// the consumer sends it to the retry topic itself.
package client
