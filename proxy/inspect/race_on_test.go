//go:build race

package inspect

// raceEnabled says the race detector is on: slow evaluations sample less.
const raceEnabled = true
