// Command enforcescale measures the enforcement state at scale: bulk
// writes to the KV bucket, a full load and its memory in process, the
// local snapshot, and then real proxy processes: cold start, start from a
// snapshot (local, and shared through the object store), resident memory,
// and how fast a change reaches many proxies.
// deploy/bench/enforce.sh runs it; the figures go to docs/benchmarks.md.
// It lives under cmd/ because it runs and talks to a NATS server itself,
// which only cmd/ and the packages DESIGN.md names may do.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// profileTo, if set, receives a CPU profile of the full load.
var profileTo *os.File

func main() {
	n := flag.Int("n", 100_000, "entries in the bucket")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the full load in process to `FILE`")
	bin := flag.String("bin", "bin/apiguard", "the apiguard binary")
	proxies := flag.Int("proxies", 10, "proxies watching the bucket for the propagation figure (0: skip)")
	changes := flag.Int("changes", 200, "changes timed across the proxies")
	skipProc := flag.Bool("in-process-only", false, "skip the proxy processes")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "enforcescale:", err)
			os.Exit(1)
		}
		profileTo = f
		defer pprof.StopCPUProfile()
	}
	if err := run(*n, *bin, *proxies, *changes, *skipProc); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "enforcescale:", err)
		os.Exit(1)
	}
}

// entryOf returns the i-th entry of the mix: 40% addresses (IPv4 and a
// tenth IPv6), 10% /24 networks, 30% API keys, 20% subjects; every second
// one with a TTL.
func entryOf(i int, now time.Time) enforce.Entry {
	e := enforce.Entry{Action: enforce.ActionBlock, Reason: "threat feed 2026-11-30", Actor: "operator:bench", Created: now}
	switch r := i % 10; {
	case r < 4 && i%40 == 0:
		e.Kind, e.Value = enforce.KindIP, fmt.Sprintf("2001:db8:%x:%x::1", i>>16&0xffff, i&0xffff)
	case r < 4:
		e.Kind, e.Value = enforce.KindIP, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	case r == 4:
		e.Kind, e.Value = enforce.KindCIDR, fmt.Sprintf("%d.%d.%d.0/24", 100+i>>16&63, i>>8&255, i&255)
	case r < 8:
		e.Kind, e.Value = enforce.KindKey, fmt.Sprintf("ak_live_%016x", uint64(i)*0x9e3779b97f4a7c15)
	default:
		e.Kind, e.Value = enforce.KindSub, fmt.Sprintf("user-%d@example.com", i)
	}
	if i%2 == 0 {
		e.Expires = now.Add(6 * time.Hour)
	}
	return e
}

// cpu returns the CPU time this process has used (user and system): on a
// shared machine a phase's CPU time says more than its wall time.
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(n int, bin string, proxies, changes int, skipProc bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "enforcescale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true, JetStreamMaxMemory: 1 << 30})
	if err != nil {
		return err
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	bucket, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	if err != nil {
		return err
	}
	fmt.Printf("entries: %d (40%% addresses, 10%% /24 networks, 30%% API keys, 20%% subjects)\n", n)

	// Bulk write.
	now := time.Now()
	entries := make([]enforce.Entry, n)
	for i := range entries {
		entries[i] = entryOf(i, now)
	}
	w := kv.NewWriter(js, bucket)
	start, c0 := time.Now(), cpu()
	if written, err := w.PutBulk(ctx, entries, now); err != nil || written != n {
		return fmt.Errorf("bulk write: %d, %w", written, err)
	}
	took := time.Since(start)
	fmt.Printf("bulk write (kv.Writer.PutBulk): %.2fs, %.0f entries/s; CPU %.2fs (client and server)\n", took.Seconds(), float64(n)/took.Seconds(), (cpu() - c0).Seconds())
	entries = nil

	// Full load in process, and its heap.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	m := enforce.NewMatcher()
	wa := kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.DiscardHandler))
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	if profileTo != nil {
		_ = pprof.StartCPUProfile(profileTo)
	}
	start, c0 = time.Now(), cpu()
	go func() { done <- wa.Run(wctx) }()
	for !wa.Synced() {
		time.Sleep(time.Millisecond)
	}
	took, c1 := time.Since(start), cpu()-c0
	pprof.StopCPUProfile()
	stop()
	<-done
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	fmt.Printf("full load in process (watcher, ordered consumer): %.2fs, %.0f entries/s; CPU %.2fs (client and server)\n", took.Seconds(), float64(n)/took.Seconds(), c1.Seconds())
	fmt.Printf("matcher heap after GC: %.1f MiB, %.0f B/entry\n", float64(after.HeapAlloc-before.HeapAlloc)/(1<<20),
		float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
	pos, _ := wa.Position()
	var buf bytes.Buffer
	start = time.Now()
	if err := m.Save(&buf, pos, time.Now()); err != nil {
		return err
	}
	fmt.Printf("snapshot save: %.2fs, %.1f MiB (%.0f B/entry)\n", time.Since(start).Seconds(), float64(buf.Len())/(1<<20), float64(buf.Len())/float64(n))
	start, c0 = time.Now(), cpu()
	b, _, err := enforce.Restore(buf.Bytes(), time.Now())
	if err != nil {
		return err
	}
	m2 := enforce.NewMatcher()
	m2.Load(b)
	fmt.Printf("snapshot restore: %.2fs; CPU %.2fs\n", time.Since(start).Seconds(), (cpu() - c0).Seconds())
	runtime.KeepAlive(m)
	if skipProc {
		return nil
	}
	return processes(ctx, dir, bin, srv.ClientURL(), w, n, proxies, changes)
}

// proxyProc is a running apiguard proxy.
type proxyProc struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// printLogs prints the proxy's log lines that contain any of the words.
func printLogs(p *proxyProc, words ...string) {
	for _, l := range strings.Split(p.logs.String(), "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				fmt.Println("  ", l)
				break
			}
		}
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProxy starts a proxy with its own state directory and returns when
// it listens, with the time that took.
func startProxy(bin, natsURL, upstream, stateDir, level string) (*proxyProc, time.Duration, error) {
	cfg := filepath.Join(stateDir, "proxy.yaml")
	_ = os.MkdirAll(stateDir, 0o750)
	// Snapshots checked every 2 s, so that the first proxy uploads the
	// shared one soon after its full load.
	if err := os.WriteFile(cfg, []byte("proxy:\n  sync_timeout: 300s\n  enforcement_snapshot:\n    interval: 2s\nlog:\n  level: "+level+"\n"), 0o600); err != nil {
		return nil, 0, err
	}
	p := &proxyProc{logs: &lockedBuffer{}}
	p.cmd = exec.Command(bin, "proxy", "--config", cfg, "--nats", natsURL, "--listen", freeAddr(), "--upstream", upstream,
		"--spool-dir", filepath.Join(stateDir, "spool"), "--metrics-listen", "off", "--admin-listen", "off")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, 0, err
	}
	for !strings.Contains(p.logs.String(), "proxy listening") {
		if time.Since(start) > 5*time.Minute || strings.Contains(p.logs.String(), "Error") {
			p.stop()
			return nil, 0, fmt.Errorf("proxy did not start:\n%s", p.logs.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return p, time.Since(start), nil
}

// cpu returns the CPU time (user and system) the process has used.
func (p *proxyProc) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	i := bytes.LastIndexByte(data, ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (p *proxyProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// rss returns the process's resident memory in bytes.
func (p *proxyProc) rss() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func processes(ctx context.Context, dir, bin, natsURL string, w *kv.Writer, n, proxies, changes int) error {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()

	// Baseline memory: a proxy whose bucket is empty, on its own server.
	empty, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats-empty"), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	empty.Start()
	if !empty.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("nats not ready")
	}
	p, emptyStart, err := startProxy(bin, empty.ClientURL(), upstream.URL, filepath.Join(dir, "p-empty"), "info")
	if err != nil {
		return err
	}
	fmt.Printf("proxy start with an empty bucket: %.2fs to listening; proxy CPU %.2fs\n", emptyStart.Seconds(), p.cpu().Seconds())
	time.Sleep(time.Second)
	base := p.rss()
	p.stop()
	empty.Shutdown()

	start := time.Now()
	p, cold, err := startProxy(bin, natsURL, upstream.URL, filepath.Join(dir, "p0"), "info")
	if err != nil {
		return err
	}
	coldCPU := p.cpu()
	time.Sleep(time.Second)
	rss := p.rss()
	fmt.Printf("proxy cold start (full load, no snapshot): %.2fs to listening; proxy CPU %.2fs\n", cold.Seconds(), coldCPU.Seconds())
	fmt.Printf("proxy resident memory: %.0f MiB with the state, %.0f MiB with an empty bucket: %.0f B/entry\n",
		float64(rss)/(1<<20), float64(base)/(1<<20), float64(rss-base)/float64(n))
	// The shared snapshot: the first proxy uploads it, and a proxy with an
	// empty state directory starts from it.
	for !strings.Contains(p.logs.String(), "shared enforcement snapshot uploaded") {
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("the proxy never uploaded the shared snapshot:\n%s", p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	printLogs(p, "shared enforcement snapshot uploaded")
	sp, shared, err := startProxy(bin, natsURL, upstream.URL, filepath.Join(dir, "p-shared"), "info")
	if err != nil {
		return err
	}
	fmt.Printf("proxy cold start from the shared snapshot (no local snapshot): %.2fs to listening; proxy CPU %.2fs\n", shared.Seconds(), sp.cpu().Seconds())
	printLogs(sp, "shared enforcement snapshot read", "caught up", "enforcement state loaded")
	sp.stop()
	p.stop()
	p, warm, err := startProxy(bin, natsURL, upstream.URL, filepath.Join(dir, "p0"), "info")
	if err != nil {
		return err
	}
	fmt.Printf("proxy start from its snapshot: %.2fs to listening; proxy CPU %.2fs\n", warm.Seconds(), p.cpu().Seconds())
	time.Sleep(time.Second)
	fmt.Printf("proxy resident memory after a start from its snapshot: %.0f MiB: %.0f B/entry\n", float64(p.rss())/(1<<20), float64(p.rss()-base)/float64(n))
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if strings.Contains(l, "enforcement snapshot read") || strings.Contains(l, "caught up") {
			fmt.Println("  ", l)
		}
	}
	p.stop()
	if proxies == 0 {
		return nil
	}

	// Propagation: proxies at debug level log each applied entry with the
	// time since its trigger, which the bench sets to the write time.
	var ps []*proxyProc
	defer func() {
		for _, p := range ps {
			p.stop()
		}
	}()
	for i := range proxies {
		// Each from its own snapshot, copied from the first, to start fast.
		sd := filepath.Join(dir, fmt.Sprintf("p%d", i+1))
		_ = os.MkdirAll(sd, 0o750)
		if data, err := os.ReadFile(filepath.Join(dir, "p0", "enforcement.snap")); err == nil {
			_ = os.WriteFile(filepath.Join(sd, "enforcement.snap"), data, 0o600)
		}
		p, _, err := startProxy(bin, natsURL, upstream.URL, sd, "debug")
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	for i := range changes {
		at := time.Now()
		e := enforce.Entry{Kind: enforce.KindIP, Value: fmt.Sprintf("192.0.%d.%d", 2+i/250, i%250+1), Action: enforce.ActionBlock,
			Created: at, Trigger: at, Expires: at.Add(time.Hour)}
		if _, err := w.Put(ctx, e, at); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	re := regexp.MustCompile(`enforcement entry applied.*value=192\.0\.\S+ since_trigger_ms=([0-9.]+)`)
	var delays []float64
	for _, p := range ps {
		for _, mt := range re.FindAllStringSubmatch(p.logs.String(), -1) {
			d, _ := strconv.ParseFloat(mt[1], 64)
			delays = append(delays, d)
		}
	}
	if len(delays) == 0 {
		return fmt.Errorf("no applied entries in the proxies' logs")
	}
	slices.Sort(delays)
	q := func(f float64) float64 { return delays[min(len(delays)-1, int(f*float64(len(delays))))] }
	fmt.Printf("propagation to %d proxies, %d changes (%d of %d seen): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		proxies, changes, len(delays), proxies*changes, q(0.5), q(0.99), delays[len(delays)-1])
	return nil
}
