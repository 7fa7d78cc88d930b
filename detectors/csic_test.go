package detectors

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/internal/evaldata"
)

// csicRequest is one request of a CSIC 2010 file: its method and path,
// and its parameters from the query and the form body.
type csicRequest struct {
	op     string
	params [][2]string
}

var csicLine = regexp.MustCompile(`^(GET|POST|PUT) http://([^/ :]+)(:[0-9]+)?(\S*) HTTP/1\.[01]$`)

// readCSIC reads a CSIC 2010 file into requests: method and path, and
// the parameters of the query and the form body.
func readCSIC(t *testing.T, file string) []csicRequest {
	t.Helper()
	var out []csicRequest
	for _, r := range evaldata.CSIC(t, file) {
		m := csicLine.FindStringSubmatch(r.Line)
		if m == nil {
			t.Fatalf("%s: request line %q", file, r.Line)
		}
		path, query, _ := strings.Cut(m[4], "?")
		req := csicRequest{op: m[1] + " " + path, params: splitParams(query)}
		if m[1] != "GET" {
			req.params = append(req.params, splitParams(r.Body)...)
		}
		out = append(out, req)
	}
	return out
}

// decodeCSIC percent-decodes a raw value once, as a form would (the proxy
// decodes once too); an undecodable value is kept as sent.
func decodeCSIC(v string) string {
	if d, err := url.QueryUnescape(v); err == nil {
		return d
	}
	return v
}

func splitParams(s string) [][2]string {
	var out [][2]string
	for _, kv := range strings.Split(s, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, [2]string{k, v})
	}
	return out
}

// csicModel is the parameter detector's model applied to whole requests,
// as the detector applies it to events: a request is anomalous if it
// carries a parameter its path never had, or if any value's tail
// probability is at or below the threshold. A path never seen in training
// is anomalous too (in the engine, that is the probing and inventory
// detectors' part).
type csicModel struct {
	paths  map[string]int
	params map[string]*paramModel
}

func trainCSIC(reqs []csicRequest) *csicModel {
	m := &csicModel{paths: map[string]int{}, params: map[string]*paramModel{}}
	for _, r := range reqs {
		m.paths[r.op]++
		for _, p := range r.params {
			key := r.op + "\x00" + p[0]
			pm := m.params[key]
			if pm == nil {
				pm = &paramModel{}
				m.params[key] = pm
			}
			pm.learn(decodeCSIC(p[1]))
		}
	}
	return m
}

// score returns the request's smallest tail probability.
func (m *csicModel) score(r csicRequest) float64 {
	n := m.paths[r.op]
	if n == 0 {
		return 0
	}
	p := 1.0
	for _, kv := range r.params {
		pm := m.params[r.op+"\x00"+kv[0]]
		if pm == nil {
			p = min(p, unknownNameP)
			continue
		}
		p = min(p, pm.score(decodeCSIC(kv[1])).p)
	}
	return p
}

// TestCSICParameterModel trains the parameter models on four fifths of
// the CSIC 2010 normal training set and scores the held-back fifth (false
// positives) and the anomalous development set (detections). The
// published reference — a one-class SVM on HTTP features — reaches
// F1 ≈ 0.95; the target is 0.96.
func TestCSICParameterModel(t *testing.T) {
	normal := readCSIC(t, "normalTrafficTraining.txt.gz")
	anomalous := readCSIC(t, "anomalousTrafficDev.txt.gz")
	if len(normal) != 36000 || len(anomalous) != 5013 {
		t.Fatalf("read %d normal and %d anomalous requests: the parser lost some", len(normal), len(anomalous))
	}
	var train, held []csicRequest
	for i, r := range normal {
		if i%5 == 4 {
			held = append(held, r)
		} else {
			train = append(train, r)
		}
	}
	m := trainCSIC(train)
	maxP := DefaultConfig().Params.MaxP
	var tp, fn, fp, tn int
	for _, r := range anomalous {
		if m.score(r) <= maxP {
			tp++
		} else {
			fn++
		}
	}
	for _, r := range held {
		if m.score(r) <= maxP {
			fp++
		} else {
			tn++
		}
	}
	tpr := float64(tp) / float64(tp+fn)
	fpr := float64(fp) / float64(fp+tn)
	prec := float64(tp) / float64(tp+fp)
	f1 := 2 * prec * tpr / (prec + tpr)
	t.Logf("CSIC 2010: trained on %d normal requests; %d anomalous and %d held-back normal scored at max_p %g",
		len(train), len(anomalous), len(held), maxP)
	t.Logf("TPR %.4f  FPR %.4f  precision %.4f  F1 %.4f  (reference one-class SVM F1 ≈ 0.95; target 0.96)", tpr, fpr, prec, f1)
	if f1 < 0.96 {
		t.Errorf("F1 %.4f, target 0.96", f1)
	}
}
