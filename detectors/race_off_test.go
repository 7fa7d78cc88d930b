//go:build !race

package detectors

// raceEnabled says the race detector is on: slow sweeps run fewer seeds.
const raceEnabled = false
