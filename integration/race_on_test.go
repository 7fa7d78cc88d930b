//go:build race

package integration

// raceEnabled says the race detector is on: the days of generated traffic
// run one seed instead of three.
const raceEnabled = true
