package detectors

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// ParamsName names the parameter-anomaly detector's anomalies.
const ParamsName = "parameters"

// ParamsConfig configures the parameter-anomaly detector.
type ParamsConfig struct {
	// MinSamples is how many values of a parameter its model learns
	// before it scores any.
	MinSamples int `yaml:"min_samples"`
	// MaxP is the tail probability at or below which a value is anomalous.
	MaxP float64 `yaml:"max_p"`
}

func (c ParamsConfig) validate() error {
	if c.MinSamples < 10 {
		return fmt.Errorf("detectors.parameters.min_samples: %d, want at least 10", c.MinSamples)
	}
	if !(c.MaxP > 0 && c.MaxP < 1) {
		return fmt.Errorf("detectors.parameters.max_p: %g, want in (0,1)", c.MaxP)
	}
	return nil
}

// Character classes: lower-case letters, upper-case letters, digits,
// each ASCII punctuation character on its own, space, control characters
// and non-ASCII bytes. An injection almost always needs a class the
// parameter never carries (a quote in a quantity, a < in a name).
const (
	classLower = iota
	classUpper
	classDigit
	classSpace
	classControl
	classHigh
	classPunct // first of the 32 punctuation classes
	numClasses = classPunct + 32
)

var classOfByte [256]uint8

var classNames [numClasses]string

func init() {
	const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	for b := 0; b < 256; b++ {
		c := byte(b)
		switch {
		case c >= 'a' && c <= 'z':
			classOfByte[b] = classLower
		case c >= 'A' && c <= 'Z':
			classOfByte[b] = classUpper
		case c >= '0' && c <= '9':
			classOfByte[b] = classDigit
		case c == ' ':
			classOfByte[b] = classSpace
		case c < 0x20 || c == 0x7f:
			classOfByte[b] = classControl
		case c >= 0x80:
			classOfByte[b] = classHigh
		default:
			classOfByte[b] = uint8(classPunct + strings.IndexByte(punct, c))
		}
	}
	classNames[classLower], classNames[classUpper], classNames[classDigit] = "lower-case letters", "upper-case letters", "digits"
	classNames[classSpace], classNames[classControl], classNames[classHigh] = "space", "control characters", "non-ASCII bytes"
	for i := 0; i < len(punct); i++ {
		classNames[classPunct+i] = strconv.Quote(punct[i : i+1])
	}
}

// maxValues bounds the distinct values a parameter model remembers; a
// parameter with more is free text, and its values are not enumerated.
const maxValues = 32

// paramModel is what one parameter of one API carries: its character
// classes and how often each occurs, its length distribution, and, while
// it has few distinct values, the values themselves.
type paramModel struct {
	N        uint32
	ClassN   [numClasses]uint32 // values containing each class
	LenMean  float64
	LenM2    float64
	LenMax   int
	Values   map[string]uint32
	Overflow bool // more than maxValues distinct values seen
	// Shapes counts the value shapes (shapeOf) while there are few.
	Shapes        map[string]uint32
	ShapeOverflow bool
}

// shapeOf is a value's structure: its runs of character classes with
// their lengths ("06928607B" → "d8u1", "a@b.es" → "l1@1l1.1l2"), lengths
// above 9 written as "+". A parameter with a fixed format (an id, a date,
// a card number) has few shapes; a value that breaks the format has a new
// one.
func shapeOf(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); {
		c := classOfByte[v[i]]
		j := i + 1
		for j < len(v) && classOfByte[v[j]] == c {
			j++
		}
		switch {
		case c == classLower:
			b.WriteByte('l')
		case c == classUpper:
			b.WriteByte('u')
		case c == classDigit:
			b.WriteByte('d')
		case c == classSpace:
			b.WriteByte('_')
		case c >= classPunct:
			b.WriteByte(v[i])
		default:
			b.WriteByte('x')
		}
		if n := j - i; n > 9 {
			b.WriteByte('+')
		} else {
			b.WriteByte(byte('0' + n))
		}
		i = j
	}
	return b.String()
}

// classesOf returns the set of classes in v.
func classesOf(v string) uint64 {
	var set uint64
	for i := 0; i < len(v); i++ {
		set |= 1 << classOfByte[v[i]]
	}
	return set
}

func (m *paramModel) learn(v string) {
	m.N++
	set := classesOf(v)
	for c := 0; c < numClasses; c++ {
		if set&(1<<c) != 0 {
			m.ClassN[c]++
		}
	}
	l := float64(len(v))
	d := l - m.LenMean
	m.LenMean += d / float64(m.N)
	m.LenM2 += d * (l - m.LenMean)
	m.LenMax = max(m.LenMax, len(v))
	if !m.Overflow {
		if m.Values == nil {
			m.Values = map[string]uint32{}
		}
		if _, ok := m.Values[v]; ok || len(m.Values) < maxValues {
			m.Values[strings.Clone(v)]++
		} else {
			m.Overflow, m.Values = true, nil
		}
	}
	if !m.ShapeOverflow {
		if m.Shapes == nil {
			m.Shapes = map[string]uint32{}
		}
		sh := shapeOf(v)
		if _, ok := m.Shapes[sh]; ok || len(m.Shapes) < maxValues {
			m.Shapes[sh]++
		} else {
			m.ShapeOverflow, m.Shapes = true, nil
		}
	}
}

// goodTuring is the chance that the next observation is new, given counts
// of what was seen: the share of things seen once (at least one), over n.
func goodTuring(counts map[string]uint32, n float64) float64 {
	once := 0
	for _, c := range counts {
		if c == 1 {
			once++
		}
	}
	return max(float64(once), 1) / (n + 1)
}

// paramScore is a value's tail probability with what made it surprising.
type paramScore struct {
	p      float64
	reason string
	devs   []*event.Deviation
}

// score returns the probability, under the model, of a value at least as
// unusual as v: the product of the chance of each character class it
// carries that the parameter rarely or never carries (rule of succession:
// (seen+1)/(N+2)), the Cantelli bound on its length beyond the longest
// seen, and the Good–Turing chance of a new value (for an enumerated
// parameter) or of a new shape (for a formatted one).
func (m *paramModel) score(v string) paramScore {
	s := paramScore{p: 1}
	n := float64(m.N)
	set := classesOf(v)
	for c := 0; c < numClasses; c++ {
		if set&(1<<c) == 0 {
			continue
		}
		f := (float64(m.ClassN[c]) + 1) / (n + 2)
		if f < 0.01 {
			s.p *= f
			s.devs = append(s.devs, &event.Deviation{Feature: "class " + classNames[c], Observed: 1, Expected: float64(m.ClassN[c]) / n})
			if s.reason == "" {
				s.reason = "carries " + classNames[c]
			}
		}
	}
	if l := float64(len(v)); len(v) > m.LenMax {
		variance := m.LenM2 / max(n-1, 1)
		d := l - m.LenMean
		pl := max(variance, 1) / (max(variance, 1) + d*d)
		s.p *= pl
		s.devs = append(s.devs, &event.Deviation{Feature: "length", Observed: l, Expected: m.LenMean, Deviation: d / math.Sqrt(max(variance, 1))})
		if s.reason == "" {
			s.reason = fmt.Sprintf("is %d bytes long (longest seen %d)", len(v), m.LenMax)
		}
	}
	if !m.Overflow && m.Values != nil {
		if _, ok := m.Values[v]; !ok {
			s.p *= goodTuring(m.Values, n)
			s.devs = append(s.devs, &event.Deviation{Feature: "new value", Observed: 1, Expected: float64(len(m.Values))})
			if s.reason == "" {
				s.reason = fmt.Sprintf("is none of the %d values it takes", len(m.Values))
			}
		}
	} else if !m.ShapeOverflow && m.Shapes != nil {
		// An enumerated parameter's new value already says it; the shape
		// speaks for parameters with many values but a format.
		if sh := shapeOf(v); m.Shapes[sh] == 0 {
			s.p *= goodTuring(m.Shapes, n)
			s.devs = append(s.devs, &event.Deviation{Feature: "new shape " + clipString(sh, 40), Observed: 1, Expected: float64(len(m.Shapes))})
			if s.reason == "" {
				s.reason = fmt.Sprintf("breaks its format (%d shapes seen)", len(m.Shapes))
			}
		}
	}
	return s
}

// decodeParam percent-decodes a value as a form would; an undecodable
// value is scored as sent.
func decodeParam(v string) string {
	if !strings.ContainsAny(v, "%+") {
		return v
	}
	if d, err := url.QueryUnescape(v); err == nil {
		return d
	}
	return v
}

// params finds parameter values unlike the ones the parameter carries on
// that API — in character classes, length or value — which is how
// injections that static rules miss (encoded, novel, or aimed at the
// application's own syntax) look from outside. It needs the proxy to
// capture query values (proxy.capture_query_values) and learns from
// principals that are not flagged.
type params struct{ cfg ParamsConfig }

func (*params) name() string { return ParamsName }

func (d *params) observe(e *Engine, x *ctx, out []finding) []finding {
	if !x.allowed {
		return out
	}
	var worst paramScore
	var worstName, worstValue string
	worst.p = 1
	if len(x.ev.Query) == 0 {
		return out
	}
	// An API that has carried parameters for MinSamples requests has
	// shown its parameter names: a name it never carried is a structural
	// anomaly (mass assignment, a tampered form), a fact like an
	// undeclared operation rather than a statistic.
	known := int(x.api.ParamRequests) >= d.cfg.MinSamples
	if x.learn {
		x.api.ParamRequests++
	}
	for _, q := range x.ev.Query {
		key := x.ev.Api + "\x00" + q.Name
		m := e.st.Params[key]
		if m == nil {
			// (A full model table cannot tell a new name from a known one.)
			if known && len(e.st.Params) < maxParamModels {
				if unknownNameP < worst.p {
					worst = paramScore{p: unknownNameP, reason: fmt.Sprintf("is a parameter the API never carried in %d requests", x.api.ParamRequests),
						devs: []*event.Deviation{{Feature: "new parameter " + strconv.Quote(clipString(q.Name, 40)), Observed: 1, Expected: 0}}}
					worstName, worstValue = q.Name, q.Value
				}
				continue
			}
			// Names are learned whether or not the proxy captures values.
			if !x.learn || len(e.st.Params) >= maxParamModels {
				continue
			}
			m = &paramModel{}
			e.st.Params[strings.Clone(key)] = m
		}
		if q.Value == "" {
			continue
		}
		v := decodeParam(q.Value)
		if int(m.N) < d.cfg.MinSamples {
			if x.learn {
				m.learn(v)
			}
			continue
		}
		s := m.score(v)
		if s.p <= d.cfg.MaxP {
			if s.p < worst.p {
				worst, worstName, worstValue = s, q.Name, v
			}
			continue
		}
		if x.learn {
			m.learn(v)
		}
	}
	if worst.p > d.cfg.MaxP {
		return out
	}
	return append(out, finding{p: worst.p, deviations: worst.devs, summary: fmt.Sprintf(
		"%s %s sent %s=%s on %s, which %s",
		x.kind, x.val, worstName, strconv.Quote(clipString(worstValue, 60)), x.ev.Api, worst.reason)})
}

// unknownNameP is the tail probability given to a parameter name an API
// with an established parameter set never carried.
const unknownNameP = 1e-6

// maxParamModels bounds the parameter models of one engine, so random
// parameter names cannot grow it without bound.
const maxParamModels = 20000
