package proxy

import "sync"

// copyBufferSize is the size of the buffers the proxy copies bodies
// through: ReverseProxy's own default, which it would otherwise allocate
// afresh for every response (a 32 KiB large-object allocation per request,
// the biggest single cost in the profile of docs/proxy.md).
const copyBufferSize = 32 << 10

// bufferPool hands out copyBufferSize buffers for httputil.ReverseProxy.
// It pools array pointers, so neither Get nor Put allocates (a []byte put
// into a sync.Pool would box its slice header every time).
type bufferPool struct{ p sync.Pool }

// copyBuffers is the process's pool of copy buffers.
var copyBuffers = &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}

// Get returns a buffer of copyBufferSize bytes.
func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

// Put returns a buffer that Get handed out; others are dropped.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}
