package detectors

import (
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Every detector states its finding as a tail probability p: how likely an
// observation at least this extreme is under the baseline. The score is
// 1 − p, so a score means the same thing whichever detector gave it
// (0.999999 is one in a million), and severity follows p on a log scale.

// scoreOf turns a tail probability into a score in [0,1].
func scoreOf(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return 1 - min(max(p, 0), 1)
}

// normalTail is the probability that a standard normal exceeds z.
func normalTail(z float64) float64 { return distuv.UnitNormal.Survival(z) }

// binomialTail is the probability of at least k successes in n trials of
// probability p0.
func binomialTail(k, n int, p0 float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	return distuv.Binomial{N: float64(n), P: p0}.Survival(float64(k) - 0.5)
}

// poissonTail is the probability that a Poisson count of mean lambda is
// at least k. It is the regularised lower incomplete gamma function, which
// keeps its precision far into the tail (1 − CDF does not).
func poissonTail(k, lambda float64) float64 {
	k = math.Ceil(k)
	if k <= 0 {
		return 1
	}
	return mathext.GammaIncReg(k, max(lambda, 1e-9))
}

// robustZ is how many robust standard deviations x lies above a baseline
// of median and MAD; floor keeps a baseline with no spread (every sample
// equal) from making any difference infinitely surprising.
func robustZ(x, median, mad, floor float64) (z, spread float64) {
	spread = max(madScale*mad, 0.1*median, floor)
	return (x - median) / spread, spread
}

// covariance is a streaming mean and covariance of feature vectors
// (Welford's algorithm), with the Cholesky factor of the covariance
// cached until the next sample, for Mahalanobis distances.
type covariance struct {
	N    int
	Mean []float64
	M2   []float64 // d×d, row major: the sums of products of deviations

	chol    mat.Cholesky
	cholN   int  // N at the last factorisation; 0 for none
	cholOK  bool // whether the last factorisation succeeded
	scratch []float64
}

func newCovariance(d int) *covariance {
	return &covariance{Mean: make([]float64, d), M2: make([]float64, d*d)}
}

func (c *covariance) add(x []float64) {
	c.N++
	d := len(c.Mean)
	if cap(c.scratch) < d {
		c.scratch = make([]float64, d)
	}
	delta := c.scratch[:d]
	for i := range d {
		delta[i] = x[i] - c.Mean[i]
		c.Mean[i] += delta[i] / float64(c.N)
	}
	for i := range d {
		for j := range d {
			c.M2[i*d+j] += delta[i] * (x[j] - c.Mean[j])
		}
	}
}

// mahalanobis returns the squared Mahalanobis distance of x from the mean
// and its tail probability under a χ² with d degrees of freedom, or ok
// false while the covariance cannot be factorised (too few samples, or a
// feature that never varied). A ridge of 1% of each variance (and at
// least minVar) keeps a nearly constant feature from dominating.
func (c *covariance) mahalanobis(x []float64, minVar float64) (d2, p float64, ok bool) {
	d := len(c.Mean)
	if c.N < 2*d+2 {
		return 0, 1, false
	}
	// Refactorise whenever samples arrived: the result depends only on
	// the samples, so a restored engine computes what a running one did.
	if c.cholN != c.N {
		sym := mat.NewSymDense(d, nil)
		for i := range d {
			for j := i; j < d; j++ {
				v := c.M2[i*d+j] / float64(c.N-1)
				if i == j {
					v += max(0.01*v, minVar)
				}
				sym.SetSym(i, j, v)
			}
		}
		c.cholOK = c.chol.Factorize(sym)
		c.cholN = c.N
	}
	if !c.cholOK {
		return 0, 1, false
	}
	dist := stat.Mahalanobis(mat.NewVecDense(d, x), mat.NewVecDense(d, c.Mean), &c.chol)
	if math.IsNaN(dist) {
		return 0, 1, false
	}
	d2 = dist * dist
	return d2, distuv.ChiSquared{K: float64(d)}.Survival(d2), true
}
