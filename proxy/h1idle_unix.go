//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import (
	"net"
	"syscall"
)

// idlePeek tells whether an idle upstream connection can carry the next
// request: the upstream has neither closed it nor sent anything on it
// since its last response. It peeks at the socket without blocking and
// without consuming (a read with a deadline in the past would not reach
// the socket at all). It is made once per connection, so that a check
// allocates nothing.
type idlePeek struct {
	rc     syscall.RawConn // nil: the connection is not a socket
	fn     func(fd uintptr) bool
	usable bool
	b      [1]byte
}

func (p *idlePeek) init(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.rc = rc
	p.fn = func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), p.b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK || rerr == syscall.EINTR:
			p.usable = true // nothing to read: open and quiet
		case rerr != nil, n >= 0:
			// Bytes nobody asked for (n > 0), the upstream's close (n ==
			// 0), or a socket error.
			p.usable = false
		}
		return true // never wait for the socket
	}
}

// check reports whether the connection is open and quiet.
func (p *idlePeek) check() bool {
	if p.rc == nil {
		return true
	}
	p.usable = false
	return p.rc.Read(p.fn) == nil && p.usable
}
