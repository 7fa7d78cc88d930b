package proxy

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent is the GOGC the proxy runs with when the environment
// sets none. The proxy's live heap is small (the enforcement snapshot,
// the chain, the emitter's queue) and nearly all it allocates dies with the
// request, so Go's default of 100 collects very often for little: 400
// makes a quarter of the collections for a few more megabytes of heap
// (docs/proxy.md, "Allocation and GC").
const DefaultGCPercent = 400

// memoryLimitShare is the part of the container's memory limit the soft
// memory limit is set to when GOMEMLIMIT is unset, so that the higher
// GOGC never takes the process over its cgroup's limit: near the limit the
// collector runs as often as it must.
const memoryLimitShare = 0.8

// TuneGC applies the proxy's garbage-collection defaults where the
// environment does not set its own: GOGC (DefaultGCPercent) and
// GOMEMLIMIT (memoryLimitShare of the cgroup v2 limit in
// /sys/fs/cgroup/memory.max, when there is one). It returns the GC percent
// and memory limit now in force (-1: no limit).
func TuneGC() (gcPercent int, memLimit int64) {
	if os.Getenv("GOGC") == "" {
		gcPercent = DefaultGCPercent
		debug.SetGCPercent(gcPercent)
	} else {
		gcPercent = debug.SetGCPercent(-1)
		debug.SetGCPercent(gcPercent)
	}
	memLimit = debug.SetMemoryLimit(-1)
	if os.Getenv("GOMEMLIMIT") == "" {
		if limit, ok := cgroupMemoryLimit("/sys/fs/cgroup/memory.max"); ok {
			memLimit = int64(float64(limit) * memoryLimitShare)
			debug.SetMemoryLimit(memLimit)
		}
	}
	if memLimit == int64(^uint64(0)>>1) {
		memLimit = -1
	}
	return gcPercent, memLimit
}

// cgroupMemoryLimit reads a cgroup v2 memory.max file: a byte count, or
// "max" for none.
func cgroupMemoryLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}
