//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"net"
	"syscall"
)

// idleUsable reports whether an idle upstream connection can carry the
// next request: the upstream has neither closed it nor sent anything on
// it since its last response. It peeks at the socket without blocking and
// without consuming (a read with a deadline in the past would not reach
// the socket at all).
func idleUsable(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	usable := true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
			// Nothing to read: open and quiet.
		case rerr != nil, n >= 0:
			// Bytes nobody asked for (n > 0), the upstream's close (n ==
			// 0), or a socket error.
			usable = false
		}
		return true // never wait for the socket
	})
	return err == nil && usable
}
