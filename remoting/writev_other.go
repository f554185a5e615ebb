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

func writeNow(syscall.RawConn, [][]byte) (int, error) { return 0, errWouldBlock }
