//go:build !linux

package remoting

import (
	"errors"
	"net"
	"syscall"
)

// Writes that must not block are Linux only; elsewhere every frame goes
// through the connection's writer goroutine.

const maxIovecs = 1024

var errWouldBlock = errors.New("remoting: socket buffer full")

func rawConnOf(net.Conn) syscall.RawConn { return nil }

type iovScratch = []struct{}

func writeNow(_ syscall.RawConn, _ [][]byte, iov iovScratch) (int, iovScratch, error) {
	return 0, iov, errWouldBlock
}
