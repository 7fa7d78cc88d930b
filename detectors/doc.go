// Package detectors provides apiguard's detectors: pure functions of the
// event stream that keep per-API baselines and per-principal state and
// return explained anomalies. They run on event time only, import no I/O,
// and never decide what to do about an anomaly: a replay of the same events
// gives the same anomalies, byte for byte.
package detectors
