package replay

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Access logs: Apache/NCSA combined, nginx's default, and any nginx
// log_format. One engine reads them all: a log_format string compiled to
// literals and variables, each variable's value running to the next
// literal (a quote preceded by a backslash is part of the value, as Apache
// writes \" inside "%r"). A line that ends early, after the request, is
// kept with the rest missing: Apache's common format is combined without
// the referer and the user agent.

// nginxCombined is nginx's predefined "combined" log_format.
const nginxCombined = `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

// apacheCombined is Apache's "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\"
// \"%{User-Agent}i\"" in nginx's terms ($ident is %l, read and ignored).
const apacheCombined = `$remote_addr $ident $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`

// logToken is a literal (name empty) or a variable of a log_format.
type logToken struct {
	lit, name string
}

// logFormat reads lines of one log_format.
type logFormat struct {
	toks []logToken
	// last parsed $time_local, reused while lines share a second.
	lastTime string
	lastT    time.Time
}

// newLogFormat compiles an nginx log_format string: "$name" or "${name}"
// variables between literal text. Two variables must be separated by
// text; unknown variables are read and ignored.
func newLogFormat(f string) (*logFormat, error) {
	lf := &logFormat{}
	var lit strings.Builder
	has := map[string]bool{}
	for i := 0; i < len(f); {
		if f[i] != '$' {
			lit.WriteByte(f[i])
			i++
			continue
		}
		j := i + 1
		var name string
		if j < len(f) && f[j] == '{' {
			end := strings.IndexByte(f[j:], '}')
			if end < 0 {
				return nil, fmt.Errorf("log format: unclosed ${ at byte %d", i)
			}
			name, j = f[j+1:j+end], j+end+1
		} else {
			for j < len(f) && (f[j] == '_' || f[j] >= 'a' && f[j] <= 'z' || f[j] >= 'A' && f[j] <= 'Z' || f[j] >= '0' && f[j] <= '9') {
				j++
			}
			name = f[i+1 : j]
		}
		if name == "" {
			return nil, fmt.Errorf("log format: \"$\" without a variable name at byte %d", i)
		}
		if lit.Len() > 0 {
			lf.toks = append(lf.toks, logToken{lit: lit.String()})
			lit.Reset()
		} else if n := len(lf.toks); n > 0 && lf.toks[n-1].name != "" {
			return nil, fmt.Errorf("log format: $%s and $%s are not separated by text", lf.toks[n-1].name, name)
		}
		lf.toks = append(lf.toks, logToken{name: strings.ToLower(name)})
		has[strings.ToLower(name)] = true
		i = j
	}
	if lit.Len() > 0 {
		lf.toks = append(lf.toks, logToken{lit: lit.String()})
	}
	if !has["request"] && !(has["request_method"] && (has["request_uri"] || has["uri"])) {
		return nil, errors.New("log format: needs $request, or $request_method and $request_uri")
	}
	return lf, nil
}

func (lf *logFormat) parse(in io.Reader, _ string, add func(*logRequest), bad func(int, error)) error {
	var lr logRequest
	return eachLine(in, func(n int, line []byte) {
		if len(line) == 0 {
			return
		}
		lr = logRequest{line: n}
		if err := lf.parseLine(string(line), &lr); err != nil {
			bad(n, err)
			return
		}
		add(&lr)
	}, bad)
}

// parseLine reads one line into lr.
func (lf *logFormat) parseLine(s string, lr *logRequest) error {
	pos := 0
	var uri, args string
	for i, tk := range lf.toks {
		if tk.name == "" {
			if !strings.HasPrefix(s[pos:], tk.lit) {
				if pos == len(s) && lr.method != "" {
					break // the line ends early: the rest is missing
				}
				return fmt.Errorf("byte %d: want %q", pos, clipText(tk.lit))
			}
			pos += len(tk.lit)
			continue
		}
		end := len(s)
		if i+1 < len(lf.toks) {
			e := indexUnescaped(s[pos:], lf.toks[i+1].lit)
			if e < 0 {
				if lr.method == "" && tk.name != "request" {
					return fmt.Errorf("byte %d: $%s: no %q after it", pos, tk.name, clipText(lf.toks[i+1].lit))
				}
			} else {
				end = pos + e
			}
		}
		v := s[pos:end]
		pos = end
		if err := lf.set(lr, tk.name, v, &uri, &args); err != nil {
			return err
		}
		if pos == len(s) && i+1 < len(lf.toks) && lr.method != "" {
			break
		}
	}
	if uri != "" {
		lr.target = uri
		if args != "" && args != "-" {
			lr.target += "?" + args
		}
	}
	if lr.method == "" || lr.target == "" {
		return errors.New("no request line")
	}
	return nil
}

// set stores the value v of variable name in lr.
func (lf *logFormat) set(lr *logRequest, name, v string, uri, args *string) error {
	if v == "-" || v == "" {
		return nil
	}
	var err error
	switch name {
	case "remote_addr", "realip_remote_addr":
		lr.peer = v
	case "time_local":
		if v == lf.lastTime {
			lr.t = lf.lastT
		} else if lr.t, err = parseTimeLocal(v); err != nil {
			return fmt.Errorf("$time_local %q: %w", clipText(v), err)
		} else {
			lf.lastTime, lf.lastT = v, lr.t
		}
		lr.res, lr.has = time.Second, lr.has|fieldTime
	case "time_iso8601":
		if lr.t, err = time.Parse(time.RFC3339, v); err != nil {
			return fmt.Errorf("$time_iso8601 %q: %w", clipText(v), err)
		}
		lr.res, lr.has = time.Second, lr.has|fieldTime
	case "msec":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("$msec %q: %w", clipText(v), err)
		}
		lr.t = time.UnixMilli(int64(f*1000 + 0.5)).UTC()
		lr.res, lr.has = time.Millisecond, lr.has|fieldTime
	case "request":
		return parseRequestLine(unescapeLog(v), lr)
	case "request_method":
		if !isToken(v) {
			return fmt.Errorf("$request_method %q: not a method", clipText(v))
		}
		lr.method = v
	case "request_uri", "uri":
		*uri = unescapeLog(v)
	case "args", "query_string":
		*args = unescapeLog(v)
	case "status":
		if lr.status, err = strconv.Atoi(v); err != nil || lr.status < 0 || lr.status > 999 {
			return fmt.Errorf("$status %q: not a status", clipText(v))
		}
		lr.has |= fieldStatus
	case "body_bytes_sent", "bytes_sent":
		if lr.respBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("$%s %q: not a count", name, clipText(v))
		}
		lr.has |= fieldResponseBytes
	case "content_length", "http_content_length":
		if lr.reqBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			return fmt.Errorf("$%s %q: not a count", name, clipText(v))
		}
		lr.has |= fieldRequestBytes
	case "request_time":
		if lr.duration, err = parseSeconds(v); err != nil {
			return fmt.Errorf("$request_time %q: %w", clipText(v), err)
		}
		lr.has |= fieldDuration
	case "upstream_response_time":
		// "0.012, 0.003" when nginx tried several upstreams: their sum.
		for part := range strings.SplitSeq(v, ",") {
			d, err := parseSeconds(strings.TrimSpace(part))
			if err == nil {
				lr.upstream += d
			}
		}
	case "host", "http_host", "server_name":
		if lr.host == "" || name != "server_name" {
			lr.host = v
		}
		lr.has |= fieldHost
	case "http_user_agent":
		lr.ua = unescapeLog(v)
	case "http_referer":
		lr.referer = unescapeLog(v)
	case "http_x_forwarded_for":
		lr.xff = unescapeLog(v)
	default:
		if h, ok := strings.CutPrefix(name, "http_"); ok {
			lr.hdrs = append(lr.hdrs, [2]string{strings.ReplaceAll(h, "_", "-"), unescapeLog(v)})
			lr.has |= fieldHeaders
		}
	}
	return nil
}

// parseRequestLine reads "METHOD target HTTP/x.y" (or HTTP/0.9's
// "METHOD target") into lr.
func parseRequestLine(v string, lr *logRequest) error {
	method, rest, ok := strings.Cut(v, " ")
	if !ok || !isToken(method) {
		return fmt.Errorf("request line %q: not HTTP", clipText(v))
	}
	target := rest
	if i := strings.LastIndexByte(rest, ' '); i >= 0 && strings.HasPrefix(rest[i+1:], "HTTP/") {
		target = rest[:i]
	}
	if target == "" {
		return fmt.Errorf("request line %q: no target", clipText(v))
	}
	lr.method, lr.target = method, target
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110), as a method must
// be for the proxy's server to read the request.
func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// indexUnescaped is strings.Index(s, lit), skipping matches that a
// backslash escapes (an odd run of backslashes before them).
func indexUnescaped(s, lit string) int {
	for off := 0; ; {
		i := strings.Index(s[off:], lit)
		if i < 0 {
			return -1
		}
		i += off
		bs := 0
		for j := i - 1; j >= 0 && s[j] == '\\'; j-- {
			bs++
		}
		if bs%2 == 0 {
			return i
		}
		off = i + 1
	}
}

// unescapeLog undoes Apache's and nginx's escaping of logged values:
// \xHH is the byte HH, \" \\ \n \r \t \b \v the character. Other
// backslashes stay. It returns s itself when there is no backslash.
func unescapeLog(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b = append(b, c)
			continue
		}
		switch n := s[i+1]; n {
		case 'x':
			if i+3 < len(s) && isHexDigit(s[i+2]) && isHexDigit(s[i+3]) {
				v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
				b = append(b, byte(v))
				i += 3
				continue
			}
			b = append(b, c)
		case '"', '\\':
			b = append(b, n)
			i++
		case 'n', 'r', 't', 'b', 'v':
			b = append(b, "\n\r\t\b\v"[strings.IndexByte("nrtbv", n)])
			i++
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parseSeconds reads nginx's "0.123" seconds.
func parseSeconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1e6 {
		return 0, errors.New("not seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}

var months = map[string]time.Month{"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6, "Jul": 7, "Aug": 8,
	"Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12}

// parseTimeLocal reads "17/May/2015:10:05:03 +0000" by hand: it is on
// every line, and time.Parse is several times slower.
func parseTimeLocal(v string) (time.Time, error) {
	if len(v) != 26 || v[2] != '/' || v[6] != '/' || v[11] != ':' || v[14] != ':' || v[17] != ':' || v[20] != ' ' ||
		(v[21] != '+' && v[21] != '-') {
		return time.Time{}, errors.New("want dd/Mon/yyyy:hh:mm:ss ±hhmm")
	}
	num := func(s string) int {
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return -1
			}
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	day, year, hh, mm, ss, zh, zm := num(v[0:2]), num(v[7:11]), num(v[12:14]), num(v[15:17]), num(v[18:20]), num(v[22:24]), num(v[24:26])
	mon, ok := months[v[3:6]]
	if !ok || day < 1 || day > 31 || year < 0 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || zh < 0 || zm < 0 {
		return time.Time{}, errors.New("want dd/Mon/yyyy:hh:mm:ss ±hhmm")
	}
	off := (zh*60 + zm) * 60
	if v[21] == '-' {
		off = -off
	}
	return time.Date(year, mon, day, hh, mm, ss, 0, time.UTC).Add(-time.Duration(off) * time.Second), nil
}

// clipText shortens input quoted in a report.
func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
