package replay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/internal/evaldata"
)

// TestParametersOnOrdinarySite: the ordinary website's two days, imported
// with query values captured (proxy.capture.query_values, as a site that
// turns parameter scoring on records them), raise no parameters anomaly,
// and the share of client addresses any detector flags stays at most 0.5%,
// with one partition and with four.
func TestParametersOnOrdinarySite(t *testing.T) {
	path := filepath.Join(evaldata.Dir(t, "real-access-logs"), "elastic-semicomplete-17-18may2015.log.gz")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var capture bytes.Buffer
	w, err := NewWriter(&capture)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultImportConfig()
	cfg.Format = "combined"
	cfg.Proxy.Capture.QueryValues = true
	if _, err := Import(cfg, []Input{{Name: path, R: bytes.NewReader(raw)}}, w); err != nil {
		t.Fatalf("importing %s: %v", path, err)
	}
	values := 0
	for _, ev := range readAll(t, capture.Bytes()) {
		for _, q := range ev.Query {
			if q.Value != "" {
				values++
			}
		}
	}
	for _, parts := range []int{1, 4} {
		res, evs := backtestBytes(t, capture.Bytes(), parts, false)
		clients := map[string]bool{}
		for _, ev := range evs {
			clients[string(ev.ClientIp)] = true
		}
		flagged := flaggedClients(res)
		params := 0
		for _, a := range res.Anomalies {
			if a.Detector == detectors.ParamsName {
				params++
				t.Logf("parameters: %s", a.Summary)
			}
		}
		share := float64(len(flagged)) / float64(len(clients))
		t.Logf("figures: ordinary site with query values (%d values), %d partitions: %d of %d client addresses flagged (%.2f%%), %d parameters anomalies",
			values, parts, len(flagged), len(clients), 100*share, params)
		if params > 0 || share > 0.005 {
			t.Errorf("%d partitions: %d parameters anomalies, %.2f%% of client addresses flagged; want none and ≤ 0.5%%", parts, params, 100*share)
		}
	}
}
