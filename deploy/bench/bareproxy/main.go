// Command bareproxy is the baseline of the proxy benchmark: a bare
// httputil.ReverseProxy with Rewrite and nothing else, tuned like
// apiguard's transport, so the benchmark isolates what apiguard adds.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
)

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
		Transport: transport,
	}
	log.Fatal(http.ListenAndServe(*listen, rp))
}
