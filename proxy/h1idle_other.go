//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "net"

// idlePeek tells whether an idle upstream connection can carry the next
// request. Without a non-blocking peek it cannot tell: the bytes already
// buffered are checked by the pool, the rest when they are read.
type idlePeek struct{}

func (p *idlePeek) init(net.Conn) {}

func (p *idlePeek) check() bool { return true }
