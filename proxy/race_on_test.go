//go:build race

package proxy

// raceEnabled says the race detector is on: slow evaluations sample less.
const raceEnabled = true
