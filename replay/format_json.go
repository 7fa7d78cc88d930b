package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JSON lines: one JSON object a line, as nginx writes with
// log_format escape=json, or a log shipper. Fields maps each event field
// to a key of the object (a dotted key reaches into nested objects);
// unset fields try the usual names, in the order JSONFields lists them.

// JSONFields lists, for every field the "json" format reads, the keys it
// tries when the mapping does not name one. Times are RFC 3339, nginx's
// $time_local, or Unix seconds (milliseconds above 1e11); durations are
// seconds.
var JSONFields = map[string][]string{
	"time":            {"time", "timestamp", "@timestamp", "ts", "time_iso8601", "time_local", "msec"},
	"client_ip":       {"remote_addr", "client_ip", "clientip", "ip", "remote_ip"},
	"method":          {"request_method", "method"},
	"target":          {"request_uri", "uri", "url", "path"},
	"query":           {"args", "query_string", "query"},
	"request":         {"request"},
	"host":            {"host", "http_host", "server_name"},
	"status":          {"status", "status_code", "response_status"},
	"response_bytes":  {"body_bytes_sent", "bytes_sent", "response_bytes", "bytes"},
	"request_bytes":   {"content_length", "request_bytes"},
	"duration":        {"request_time", "duration"},
	"upstream":        {"upstream_response_time"},
	"user_agent":      {"http_user_agent", "user_agent", "agent"},
	"referer":         {"http_referer", "referer", "referrer"},
	"x_forwarded_for": {"http_x_forwarded_for", "x_forwarded_for", "xff"},
	"api_key":         {"http_x_api_key", "api_key"},
	"authorization":   {"http_authorization", "authorization"},
}

type jsonFormat struct {
	keys map[string][]string // field → keys to try
}

func newJSONFormat(mapping map[string]string) (*jsonFormat, error) {
	jf := &jsonFormat{keys: maps.Clone(JSONFields)}
	for f, k := range mapping {
		if _, ok := JSONFields[f]; !ok {
			known := slices.Sorted(maps.Keys(JSONFields))
			return nil, fmt.Errorf("json field mapping: unknown field %q, want one of %s", f, strings.Join(known, ", "))
		}
		jf.keys[f] = []string{k}
	}
	return jf, nil
}

func (jf *jsonFormat) parse(in io.Reader, _ string, add func(*logRequest), bad func(int, error)) error {
	return eachLine(in, func(n int, line []byte) {
		if len(bytes.TrimSpace(line)) == 0 {
			return
		}
		lr := logRequest{line: n}
		if err := jf.parseLine(line, &lr); err != nil {
			bad(n, err)
			return
		}
		add(&lr)
	}, bad)
}

func (jf *jsonFormat) parseLine(line []byte, lr *logRequest) error {
	var obj map[string]any
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&obj); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	if obj == nil {
		return errors.New("json: not an object")
	}
	get := func(field string) (any, string) {
		for _, k := range jf.keys[field] {
			if v, ok := lookup(obj, k); ok && v != nil && v != "" && v != "-" {
				return v, k
			}
		}
		return nil, ""
	}
	str := func(field string) string {
		v, _ := get(field)
		switch v := v.(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	if v, k := get("time"); v != nil {
		t, res, err := jsonTime(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		lr.t, lr.res, lr.has = t, res, lr.has|fieldTime
	}
	if req := str("request"); req != "" {
		if err := parseRequestLine(req, lr); err != nil {
			return err
		}
	}
	if m := str("method"); m != "" {
		if !isToken(m) {
			return fmt.Errorf("method %q: not a method", clipText(m))
		}
		lr.method = m
	}
	if t := str("target"); t != "" {
		lr.target = t
		if q := str("query"); q != "" && !strings.Contains(t, "?") {
			lr.target += "?" + q
		}
	}
	if lr.method == "" || lr.target == "" {
		return errors.New("no method and target (map them with --fields method=KEY,target=KEY, or request=KEY)")
	}
	lr.peer, lr.host = str("client_ip"), str("host")
	if lr.host != "" {
		lr.has |= fieldHost
	}
	for _, f := range []struct {
		name string
		bit  int
		dst  *int64
	}{{"status", fieldStatus, nil}, {"response_bytes", fieldResponseBytes, &lr.respBytes}, {"request_bytes", fieldRequestBytes, &lr.reqBytes}} {
		s := str(f.name)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%s %q: not a count", f.name, clipText(s))
		}
		if f.dst == nil {
			lr.status = int(min(n, 999))
		} else {
			*f.dst = n
		}
		lr.has |= f.bit
	}
	if s := str("duration"); s != "" {
		d, err := parseSeconds(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", clipText(s), err)
		}
		lr.duration, lr.has = d, lr.has|fieldDuration
	}
	if s := str("upstream"); s != "" {
		for part := range strings.SplitSeq(s, ",") {
			if d, err := parseSeconds(strings.TrimSpace(part)); err == nil {
				lr.upstream += d
			}
		}
	}
	lr.ua, lr.referer, lr.xff = str("user_agent"), str("referer"), str("x_forwarded_for")
	if k := str("api_key"); k != "" {
		lr.hdrs, lr.has = append(lr.hdrs, [2]string{"X-API-Key", k}), lr.has|fieldHeaders
	}
	if a := str("authorization"); a != "" {
		lr.hdrs, lr.has = append(lr.hdrs, [2]string{"Authorization", a}), lr.has|fieldHeaders
	}
	return nil
}

// lookup finds key in obj, reaching into nested objects by dots when
// the whole key is not there.
func lookup(obj map[string]any, key string) (any, bool) {
	if v, ok := obj[key]; ok {
		return v, true
	}
	head, rest, ok := strings.Cut(key, ".")
	if !ok {
		return nil, false
	}
	sub, ok := obj[head].(map[string]any)
	if !ok {
		return nil, false
	}
	return lookup(sub, rest)
}

// jsonTime reads a time: RFC 3339, $time_local, or a Unix time in seconds
// (milliseconds when above 1e11), with the resolution it was written at.
func jsonTime(v any) (time.Time, time.Duration, error) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil || math.IsNaN(f) || f < 0 || f > 1e15 {
			return time.Time{}, 0, fmt.Errorf("time %q: not a Unix time", clipText(v.String()))
		}
		if f > 1e11 {
			f /= 1000
		}
		res := time.Second
		if _, frac, ok := strings.Cut(v.String(), "."); ok {
			res = time.Duration(math.Pow10(9 - min(len(frac), 9)))
		} else if strings.Contains(v.String(), "e") || f != math.Trunc(f) {
			res = time.Millisecond
		}
		return time.Unix(0, int64(f*1e9)).UTC(), res, nil
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			res := time.Second
			if i := strings.IndexByte(v, '.'); i > 0 {
				digits := 0
				for j := i + 1; j < len(v) && v[j] >= '0' && v[j] <= '9'; j++ {
					digits++
				}
				res = time.Duration(math.Pow10(9 - min(digits, 9)))
			}
			return t, res, nil
		}
		if t, err := parseTimeLocal(v); err == nil {
			return t, time.Second, nil
		}
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return jsonTime(json.Number(v))
		}
		return time.Time{}, 0, fmt.Errorf("time %q: want RFC 3339, dd/Mon/yyyy:hh:mm:ss ±hhmm or Unix seconds", clipText(v))
	}
	return time.Time{}, 0, fmt.Errorf("time: %T, want a string or a number", v)
}
