//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package proxy

import "net"

// idleUsable reports whether an idle upstream connection can carry the
// next request. Without a non-blocking peek it cannot tell: the bytes
// already buffered are checked by the pool, the rest when it is read.
func idleUsable(net.Conn) bool { return true }
