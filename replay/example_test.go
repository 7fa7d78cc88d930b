package replay_test

import (
	"fmt"
	"os"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/replay"
)

// A recorded attack kept as a test: in a test, replay.AssertDetected(t,
// file, cfg, "ip:13.191.36.35") fails unless the scanner, and only the
// scanner, is flagged. Flagged shows what it judges.
func ExampleFlagged() {
	f, err := os.Open("../integration/testdata/captures/scan.capture")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	r, err := replay.NewReader(f, "scan.capture")
	if err != nil {
		fmt.Println(err)
		return
	}
	flagged, err := replay.Flagged(r, detectors.DefaultConfig(), 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for p, dets := range flagged {
		fmt.Println(p, dets)
	}
	// Output: ip:13.191.36.35 [probing]
}
