//go:build linux

package remoting

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX on Linux).
const maxIovecs = 1024

// rawConnOf returns nc's socket for writes that must not block, or nil
// when nc has none to offer (TLS, in-memory pipes).
func rawConnOf(nc net.Conn) syscall.RawConn {
	switch c := nc.(type) {
	case interface{ rawConn() syscall.RawConn }:
		return c.rawConn()
	case *net.TCPConn:
		rc, err := c.SyscallConn()
		if err != nil {
			return nil
		}
		return rc
	}
	return nil
}

// errWouldBlock: the socket takes no more bytes now.
var errWouldBlock = errors.New("remoting: socket buffer full")

// writeNow writes as much of bufs as rc's socket takes now, with one
// writev, never waiting for it to take more: it returns the bytes
// written, and an error when it wrote nothing (errWouldBlock when the
// socket buffer is full; the write deadline's error when it passed).
func writeNow(rc syscall.RawConn, bufs [][]byte) (int, error) {
	bufs = bufs[:min(len(bufs), maxIovecs)]
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Writev(int(fd), bufs)
			if werr != unix.EINTR {
				return true // done either way: never wait for the socket
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case werr == unix.EAGAIN:
		return 0, errWouldBlock
	case werr != nil:
		return 0, werr
	case n <= 0:
		return 0, errWouldBlock
	}
	return n, nil
}
