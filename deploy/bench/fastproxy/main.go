// Command fastproxy is a reference point of the proxy benchmark: a bare
// HTTP/1.1 reverse proxy on fasthttp (server and HostClient with
// keep-alive), with the same X-Forwarded-For and X-Request-Id work as
// bareproxy and nothing else. Next to bareproxy it measures what the HTTP
// engine alone costs (docs/proxy.md, "The engine, measured").
package main

import (
	"flag"
	"log"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19005", "address to listen on")
	upstream := flag.String("upstream", "http://127.0.0.1:19000", "upstream base URL")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("fastproxy: -upstream: %v", err)
	}
	client := &fasthttp.HostClient{Addr: u.Host, MaxConns: 256}
	var ids atomic.Uint64
	handler := func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.Header.Del("Connection")
		if ip, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
			req.Header.Set("X-Forwarded-For", ip.IP.String())
		}
		var id [20]byte
		req.Header.SetBytesV("X-Request-Id", strconv.AppendUint(id[:0], ids.Add(1), 10))
		if err := client.Do(req, &ctx.Response); err != nil {
			ctx.Error("upstream unavailable", fasthttp.StatusBadGateway)
		}
		ctx.Response.Header.Del("Connection")
	}
	log.Fatal((&fasthttp.Server{Handler: handler}).ListenAndServe(*listen))
}
