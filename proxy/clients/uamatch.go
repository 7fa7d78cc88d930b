package clients

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// patternSet matches a User-Agent against many regular expressions
// quickly. Each pattern's longest required literal (lower case, at least
// three bytes) is indexed by its first three bytes. A User-Agent's own
// three-byte windows pick the few candidates whose literal it contains,
// and only those run their regexp. Patterns without such a literal are
// always run. With the 1,498 patterns of the crawler-user-agents list, a
// User-Agent costs microseconds instead of milliseconds.
type patternSet struct {
	byTrigram map[string][]int
	literal   []string
	res       []*regexp.Regexp
	always    []int
}

// newPatternSet compiles patterns case-insensitively; it returns how many
// could not be compiled (Go's regexp has no look-behind) and skips them.
func newPatternSet(patterns []string) (*patternSet, int) {
	s := &patternSet{byTrigram: map[string][]int{}}
	skipped := 0
	for _, p := range patterns {
		re, err := regexp.Compile("(?i)" + p)
		if err != nil {
			skipped++
			continue
		}
		i := len(s.res)
		s.res = append(s.res, re)
		lit := requiredLiteral(p)
		s.literal = append(s.literal, lit)
		if len(lit) < 3 {
			s.always = append(s.always, i)
			continue
		}
		s.byTrigram[lit[:3]] = append(s.byTrigram[lit[:3]], i)
	}
	return s, skipped
}

func (s *patternSet) len() int { return len(s.res) }

// match reports whether any pattern matches ua.
func (s *patternSet) match(ua string) bool {
	l := strings.ToLower(ua)
	for i := 0; i+3 <= len(l); i++ {
		for _, p := range s.byTrigram[l[i:i+3]] {
			if strings.Contains(l[i:], s.literal[p]) && s.res[p].MatchString(ua) {
				return true
			}
		}
	}
	for _, p := range s.always {
		if s.res[p].MatchString(ua) {
			return true
		}
	}
	return false
}

// requiredLiteral returns the longest literal every match of p contains,
// lower-cased, or "" when there is none that is certain.
func requiredLiteral(p string) string {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return ""
	}
	re = re.Simplify()
	best := ""
	consider := func(r *syntax.Regexp) {
		if r.Op == syntax.OpLiteral {
			if lit := strings.ToLower(string(r.Rune)); len(lit) > len(best) {
				best = lit
			}
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		consider(re)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			consider(sub)
		}
	case syntax.OpCapture:
		if len(re.Sub) == 1 {
			return requiredLiteral(re.Sub[0].String())
		}
	}
	return best
}
