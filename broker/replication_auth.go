package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// With a cluster secret, every replication connection is authenticated
// before the replica protocol starts (part of the wire format):
//
//	master → slave   32 random bytes (the challenge)
//	slave  → master  HMAC-SHA256(secret, "ferry-replication" || challenge), 32 bytes
//
// A master that reads a wrong answer closes the connection; the slave's
// stream then fails and is dialled again with back-off. Without a secret
// the replica protocol starts at once.

const replAuthTimeout = 3 * time.Second

var errReplAuth = errors.New("broker: replication connection not authenticated by the cluster secret")

func replAuthMAC(secret string, challenge []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ferry-replication"))
	m.Write(challenge)
	return m.Sum(nil)
}

// replAuthServe challenges a slave's connection (master side).
func replAuthServe(conn net.Conn, secret string) error {
	if secret == "" {
		return nil
	}
	_ = conn.SetDeadline(time.Now().Add(replAuthTimeout))
	defer conn.SetDeadline(time.Time{})
	challenge := make([]byte, 32)
	if _, err := rand.Read(challenge); err != nil {
		return err
	}
	if _, err := conn.Write(challenge); err != nil {
		return err
	}
	answer := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, answer); err != nil {
		return fmt.Errorf("%w: %v", errReplAuth, err)
	}
	if !hmac.Equal(answer, replAuthMAC(secret, challenge)) {
		return errReplAuth
	}
	return nil
}

// replAuthDial dials the master and answers its challenge (slave side).
func replAuthDial(ctx context.Context, addr, secret string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || secret == "" {
		return conn, err
	}
	_ = conn.SetDeadline(time.Now().Add(replAuthTimeout))
	challenge := make([]byte, 32)
	if _, err := io.ReadFull(conn, challenge); err != nil {
		conn.Close()
		return nil, fmt.Errorf("replication challenge from %s: %w", addr, err)
	}
	if _, err := conn.Write(replAuthMAC(secret, challenge)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, nil
}
