// Command bareproxy is the baseline of the proxy benchmark: a bare
// httputil.ReverseProxy with Rewrite and a buffer pool and nothing else,
// tuned like apiguard's transport, so the benchmark isolates what apiguard
// adds.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
)

// buffers pools 32 KiB copy buffers (ReverseProxy's size) as array
// pointers, so Get and Put allocate nothing.
type buffers struct{ p sync.Pool }

func (b *buffers) Get() []byte { return b.p.Get().(*[32 << 10]byte)[:] }

func (b *buffers) Put(buf []byte) {
	if cap(buf) >= 32<<10 {
		b.p.Put((*[32 << 10]byte)(buf[:32<<10]))
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:19001", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:19000", "upstream base URL")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("bareproxy: -upstream: %v", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport:  transport,
		BufferPool: &buffers{p: sync.Pool{New: func() any { return new([32 << 10]byte) }}},
	}
	log.Fatal(http.ListenAndServe(*listen, rp))
}
