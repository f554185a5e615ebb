// Package compat holds the compatibility suite: tests that build the real
// ferry binary, start it as separate processes on 127.0.0.1, and drive it
// with the official RocketMQ Go client
// (github.com/apache/rocketmq-client-go/v2).
//
// It is a module of its own so that the client and its dependencies stay
// out of the main module's go.mod. Run it with
//
//	cd compat && go test ./...
//
// TestMain builds the binary from the checkout (../cmd/ferry); set
// FERRY_BIN to test a prebuilt binary instead.
//
// Every test starts its own broker (or cluster) on ports the kernel picks,
// so independent tests run in parallel. Nothing waits with a fixed sleep:
// conditions are polled with a deadline.
package compat
