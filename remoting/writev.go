//go:build linux

package remoting

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
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

// iovScratch is the scratch space of writeNow.
type iovScratch = []syscall.Iovec

// errWouldBlock: the socket takes no more bytes now.
var errWouldBlock = errors.New("remoting: socket buffer full")

// writeNow writes as much of bufs as rc's socket takes now, with one
// writev, never waiting for it to take more: it returns the bytes
// written, and an error when it wrote nothing (errWouldBlock when the
// socket buffer is full; the write deadline's error when it passed). iov
// is scratch space for the call, returned for reuse.
func writeNow(rc syscall.RawConn, bufs [][]byte, iov []syscall.Iovec) (int, []syscall.Iovec, error) {
	iov = iov[:0]
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if len(iov) == maxIovecs {
			break
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
	}
	if len(iov) == 0 {
		return 0, iov, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := rc.Write(func(fd uintptr) bool {
		for {
			// RawSyscall: the socket is non-blocking, so the call never
			// waits, and the runtime need not be told of it (Syscall's
			// entersyscall and exitsyscall cost a few percent of the
			// broker's CPU at low rates, where every answer is one writev).
			n, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			if errno != syscall.EINTR {
				return true // done either way: never wait for the socket
			}
		}
	})
	clear(iov) // no pointers to the buffers kept
	switch {
	case err != nil:
		return 0, iov, err
	case errno == syscall.EAGAIN:
		return 0, iov, errWouldBlock
	case errno != 0:
		return 0, iov, errno
	case n == 0:
		return 0, iov, errWouldBlock
	}
	return int(n), iov, nil
}
