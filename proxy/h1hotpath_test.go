package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
)

// stubTCPUpstream answers every request on every connection with a 200 and
// stubBody, allocating nothing per request: the native engine's hot-path
// figures then count the whole data plane, sockets included, and nothing
// else.
func stubTCPUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(stubBody)) + "\r\n\r\n" + stubBody)
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 {
						if _, err := c.Write(answer); err != nil {
							return
						}
					}
				}
			})
		}
	})
	return "http://" + ln.Addr().String()
}

// nativeHotPath serves the default chain on the native engine in front of
// stubTCPUpstream and returns a function that sends hotPathRequest's
// request on one keep-alive connection and reads the response.
func nativeHotPath(tb testing.TB) func() error { return socketHotPath(tb, EngineNative) }

// socketHotPath is nativeHotPath on engine.
func socketHotPath(tb testing.TB, engine string) func() error {
	cfg := DefaultConfig()
	cfg.Engine = engine
	cfg.Upstream = stubTCPUpstream(tb)
	cfg.Routes = []string{"GET /products/{id}"}
	log := slog.New(slog.DiscardHandler)
	chain, err := buildChain(cfg, matcherWith(1000))
	if err != nil {
		tb.Fatal(err)
	}
	p, err := NewWithChain(cfg, chain, nil, discard{}, 8, log)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = NewServer(p, cfg, nil, log).Serve(ctx, ln) })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); cancel(); wg.Wait() })
	req := []byte("GET /products/12345?expand=price HTTP/1.1\r\nHost: api.example\r\nX-API-Key: partner-7.secret\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0\r\n" +
		"Accept: application/json\r\nAccept-Language: en-GB,en;q=0.9\r\n\r\n")
	br := bufio.NewReader(c)
	clPrefix := []byte("Content-Length: ")
	return func() error {
		if _, err := c.Write(req); err != nil {
			return err
		}
		status, n := 0, -1
		for first := true; ; first = false {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return err
			}
			if first && len(line) > 12 {
				status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
			}
			if v, ok := bytes.CutPrefix(line, clPrefix); ok {
				n = 0
				for _, d := range bytes.TrimSpace(v) {
					n = n*10 + int(d-'0')
				}
			}
			if len(line) == 2 {
				break
			}
		}
		if status != 200 || n != len(stubBody) {
			return fmt.Errorf("status %d, body length %d", status, n)
		}
		_, err := br.Discard(n)
		return err
	}
}

// benchHotPathNative is BenchmarkHotPath/native: the default chain on the
// native engine, through real loopback sockets. Its allocs/op are the
// whole data plane's (connection loop, head parse, exchange, checks,
// event, upstream pool), since the client and the upstream stub allocate
// nothing; its time and instructions include theirs and the syscalls.
func benchHotPathNative(b *testing.B) { benchHotPathSockets(b, EngineNative) }

// benchHotPathNetHTTP is BenchmarkHotPath/nethttp: the same on the
// net/http engine (net/http's server, ReverseProxy and Transport).
func benchHotPathNetHTTP(b *testing.B) { benchHotPathSockets(b, EngineNetHTTP) }

func benchHotPathSockets(b *testing.B, engine string) {
	do := socketHotPath(b, engine)
	b.ReportAllocs()
	for b.Loop() {
		if err := do(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHotPathAllocationsNative holds the native engine to the data
// plane's budget of 10 allocations per request with the default chain,
// whole (issue 17's target).
func TestHotPathAllocationsNative(t *testing.T) {
	const budget = 10
	do := nativeHotPath(t)
	for range 50 { // fill the pools
		if err := do(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(500, func() {
		if err := do(); err != nil {
			t.Fatal(err)
		}
	})
	slack := 0.0
	if raceEnabled {
		slack = 4 // the race detector drops pooled items at random
	}
	if allocs > budget+slack {
		t.Errorf("%v allocations per request on the native engine, budget %d", allocs, budget)
	}
	t.Logf("allocations per request: %v", allocs)
}
