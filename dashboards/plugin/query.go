package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Queries answers the data source's typed queries (QueryTypeNames) from
// apiguard's ClickHouse tables. The SQL uses only what ClickHouse 18.16
// and current releases both have: buckets are intDiv on the Unix time,
// never toStartOfInterval, and every filter on time also names the date
// partitions it needs.
//
// A Queries is safe for concurrent use; it holds no state besides the
// connection pool, which the caller owns and closes.
type Queries struct {
	conn driver.Conn
	db   string
}

// NewQueries returns Queries reading the tables of database through conn.
// It does no I/O; an invalid database name is reported by every Handle.
func NewQueries(conn driver.Conn, database string) *Queries {
	return &Queries{conn: conn, db: database}
}

// queryTimeout bounds one query; Grafana's own request timeout is usually
// shorter and cancels ctx first.
const queryTimeout = 60 * time.Second

// maxBuckets bounds the points of one time series: a smaller interval
// than the range allows is widened.
const maxBuckets = 11000

// queryHandler answers one query type. It returns the frames, or an error:
// a *queryError for what the caller got wrong or could not find, anything
// else for ClickHouse's failures.
type queryHandler func(q *Queries, ctx context.Context, r *queryRequest) (data.Frames, error)

var queryHandlers map[string]queryHandler

func init() {
	// Assigned here, not in the declaration, because the handlers refer
	// to QueryTypeNames, which reads this map.
	queryHandlers = map[string]queryHandler{
		QueryTypeSeries:            (*Queries).requestSeries,
		QueryTypeTopPrincipals:     (*Queries).topPrincipals,
		QueryTypeAnomalies:         (*Queries).anomalies,
		QueryTypeAnomalyDetail:     (*Queries).anomalyDetail,
		QueryTypeBaselines:         (*Queries).baselines,
		QueryTypePrincipalTimeline: (*Queries).principalTimeline,
		QueryTypeInventory:         (*Queries).inventory,
		QueryTypeAudit:             (*Queries).audit,
		QueryTypeSQL:               (*Queries).sql,
		QueryTypeVariable:          (*Queries).variable,
	}
}

// queryRequest is one DataQuery with its time range in whole seconds.
type queryRequest struct {
	dq       backend.DataQuery
	from, to int64 // Unix seconds, inclusive
	step     int64 // bucket width in seconds
}

// queryError is a query the data source refuses or cannot answer, with
// the status Grafana shows.
type queryError struct {
	status backend.Status
	msg    string
}

func (e *queryError) Error() string { return e.msg }

func invalidf(format string, args ...any) error {
	return &queryError{status: backend.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &queryError{status: backend.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

var databaseIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Handle answers one query. Every failure is a DataResponse with an error
// and a status the panel shows: 400 for an unknown query type, malformed
// JSON or an invalid field (the message names it), 404 for an anomaly
// that does not exist, 504 when ctx or the query timeout ends first, 502
// when ClickHouse fails. Handle never panics: a bug is answered as a 500.
// Every frame carries dq.RefID.
func (q *Queries) Handle(ctx context.Context, pctx backend.PluginContext, dq backend.DataQuery) (resp backend.DataResponse) {
	_ = pctx // the data source's settings are already in q
	defer func() {
		if v := recover(); v != nil {
			backend.Logger.Error("query handler panicked", "query_type", dq.QueryType, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			resp = backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourcePlugin,
				fmt.Sprintf("%s query: internal error (logged by the plugin)", dq.QueryType))
		}
	}()
	h, ok := queryHandlers[dq.QueryType]
	if !ok {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("unknown query type %q, want one of %s", dq.QueryType, strings.Join(QueryTypeNames(), ", ")))
	}
	if !databaseIdentifier.MatchString(q.db) {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("ClickHouse database %q: want letters, digits and _ (check the data source settings)", q.db))
	}
	r := newQueryRequest(dq)
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	frames, err := h(q, ctx, r)
	if err != nil {
		return queryErrorResponse(dq.QueryType, err)
	}
	for _, f := range frames {
		f.RefID = dq.RefID
	}
	return backend.DataResponse{Frames: frames}
}

func queryErrorResponse(queryType string, err error) backend.DataResponse {
	var qe *queryError
	var exc *clickhouse.Exception
	switch {
	case errors.As(err, &qe):
		return backend.ErrDataResponseWithSource(qe.status, backend.ErrorSourceDownstream, queryType+" query: "+qe.msg)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return backend.ErrDataResponseWithSource(backend.StatusTimeout, backend.ErrorSourceDownstream,
			fmt.Sprintf("%s query: %v (narrow the time range or the filters)", queryType, err))
	case errors.As(err, &exc) && queryType == QueryTypeSQL:
		// The analyst's SQL: ClickHouse's message says what is wrong.
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			fmt.Sprintf("%s query: %v", queryType, err))
	}
	return backend.ErrDataResponseWithSource(backend.StatusBadGateway, backend.ErrorSourceDownstream,
		fmt.Sprintf("%s query: %v", queryType, err))
}

func newQueryRequest(dq backend.DataQuery) *queryRequest {
	r := &queryRequest{dq: dq, from: dq.TimeRange.From.Unix(), to: dq.TimeRange.To.Unix()}
	if r.to < r.from {
		r.from, r.to = r.to, r.from
	}
	r.step = int64(dq.Interval / time.Second)
	if r.step < 1 {
		r.step = 1
	}
	if span := r.to - r.from + 1; span/r.step > maxBuckets {
		r.step = (span + maxBuckets - 1) / maxBuckets
	}
	return r
}

// decodeModel reads the query's JSON into model m. Fields Grafana adds
// (refId, datasource, …) are ignored; a field of the wrong type is an
// error naming it.
func decodeModel(r *queryRequest, m any) error {
	if len(r.dq.JSON) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.dq.JSON, m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return invalidf("%s: got a JSON %s, want %s", te.Field, te.Value, te.Type)
		}
		return invalidf("malformed query JSON: %v", err)
	}
	return nil
}

// sqlBuilder assembles a statement and its positional arguments, which
// clickhouse-go binds (quoted and escaped) on the client.
type sqlBuilder struct {
	strings.Builder
	args []any
}

// add writes s, whose ? placeholders take args in order.
func (b *sqlBuilder) add(s string, args ...any) *sqlBuilder {
	b.WriteString(s)
	b.args = append(b.args, args...)
	return b
}

// in writes " AND column IN (?, …)" when vals is not empty, one bound
// value per placeholder: ClickHouse tests IN against a hash set and can
// use the primary key for it (has() on an array does neither), and
// clickhouse-go sends a bound slice as an array, which IN would not
// take on 18.16.
func (b *sqlBuilder) in(column string, vals []string) *sqlBuilder {
	if len(vals) > 0 {
		b.WriteString(" AND ")
		b.inList(column, "IN", vals)
	}
	return b
}

// inList writes "column IN (?, …)" (op IN or NOT IN) with vals bound; vals
// must not be empty.
func (b *sqlBuilder) inList(column, op string, vals []string) *sqlBuilder {
	b.WriteString(column + " " + op + " (")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.add("?", v)
	}
	b.WriteString(")")
	return b
}

// timeRange writes " AND <date column> BETWEEN … AND <time column> BETWEEN
// …" for seconds from to to: the date bound lets the server skip
// partitions, which a bound on time alone does not on 18.16.
func (b *sqlBuilder) timeRange(dateCol, timeCol string, from, to int64) *sqlBuilder {
	if dateCol != "" {
		fmt.Fprintf(b, " AND %s BETWEEN toDate(toDateTime(%d)) AND toDate(toDateTime(%d))", dateCol, from, to)
	}
	fmt.Fprintf(b, " AND %s BETWEEN toDateTime(%d) AND toDateTime(%d)", timeCol, from, to)
	return b
}

// table returns the qualified name of one of apiguard's tables.
func (q *Queries) table(name string) string { return q.db + "." + name }

// readFrame runs a query and returns its result as one frame named name,
// a field per column (readRows).
func (q *Queries) readFrame(ctx context.Context, name string, b *sqlBuilder) (*data.Frame, error) {
	rows, err := q.conn.Query(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("querying ClickHouse: %w", err)
	}
	defer rows.Close()
	f, _, err := readRows(name, rows, 0)
	if err != nil {
		return nil, err
	}
	return tableFrame(f), nil
}

// readRows turns rows into one frame, a field per column named as the
// column: numbers, strings, booleans and times keep their type (DateTime
// is time.Time in UTC), Nullable columns become nullable fields, enums are
// their names, arrays, maps and tuples are JSON, anything else its text.
// With most > 0 it reads at most most rows and reports whether there were
// more.
func readRows(name string, rows driver.Rows, most int) (f *data.Frame, cut bool, err error) {
	types := rows.ColumnTypes()
	convs := make([]converter, len(types))
	dest := make([]any, len(types))
	fields := make([]*data.Field, len(types))
	for i, ct := range types {
		convs[i] = converterFor(ct.ScanType())
		dest[i] = reflect.New(ct.ScanType()).Interface()
		fields[i] = data.NewField(ct.Name(), nil, convs[i].empty)
	}
	n := 0
	for rows.Next() {
		if n++; most > 0 && n > most {
			cut = true
			break
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, false, fmt.Errorf("reading ClickHouse rows: %w", err)
		}
		for i := range dest {
			fields[i].Append(convs[i].conv(reflect.ValueOf(dest[i]).Elem()))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading ClickHouse rows: %w", err)
	}
	return data.NewFrame(name, fields...), cut, nil
}

// converter maps a scanned value to a value a data.Field holds.
type converter struct {
	empty any // an empty slice of the field's type
	conv  func(v reflect.Value) any
}

var scanTimeType = reflect.TypeOf(time.Time{})

func converterFor(t reflect.Type) converter {
	if t.Kind() == reflect.Pointer {
		inner := converterFor(t.Elem())
		// A nullable field of the inner type: a slice of pointers.
		empty := reflect.MakeSlice(reflect.SliceOf(reflect.PointerTo(reflect.TypeOf(inner.empty).Elem())), 0, 0).Interface()
		return converter{empty: empty, conv: func(v reflect.Value) any {
			if v.IsNil() {
				return reflect.Zero(reflect.PointerTo(reflect.TypeOf(inner.empty).Elem())).Interface()
			}
			x := reflect.New(reflect.TypeOf(inner.empty).Elem())
			x.Elem().Set(reflect.ValueOf(inner.conv(v.Elem())))
			return x.Interface()
		}}
	}
	switch t.Kind() {
	case reflect.Bool:
		return converter{[]bool{}, func(v reflect.Value) any { return v.Bool() }}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		if t.PkgPath() == "" { // the builtin types the SDK has fields of
			return converter{reflect.MakeSlice(reflect.SliceOf(t), 0, 0).Interface(), func(v reflect.Value) any { return v.Interface() }}
		}
	case reflect.String:
		return converter{[]string{}, func(v reflect.Value) any { return v.String() }}
	case reflect.Struct:
		if t == scanTimeType {
			return converter{[]time.Time{}, func(v reflect.Value) any { return v.Interface().(time.Time).UTC() }}
		}
	case reflect.Slice, reflect.Array, reflect.Map:
		return converter{[]json.RawMessage{}, func(v reflect.Value) any {
			x := v.Interface()
			if u, ok := x.([]uint8); ok { // numbers, not base64
				ints := make([]uint16, len(u))
				for i, b := range u {
					ints[i] = uint16(b)
				}
				x = ints
			}
			b, err := json.Marshal(x)
			if err != nil {
				return json.RawMessage(strconv.Quote(fmt.Sprint(x)))
			}
			return json.RawMessage(b)
		}}
	}
	return converter{[]string{}, func(v reflect.Value) any { return fmt.Sprint(v.Interface()) }}
}

// tableFrame returns f with the table frame metadata.
func tableFrame(f *data.Frame) *data.Frame {
	return f.SetMeta(&data.FrameMeta{Type: data.FrameTypeTable, TypeVersion: data.FrameTypeVersion{0, 1}, PreferredVisualization: data.VisTypeTable})
}

// frameField returns f's field named name, or nil.
func frameField(f *data.Frame, name string) *data.Field {
	for _, fl := range f.Fields {
		if fl.Name == name {
			return fl
		}
	}
	return nil
}

// uint8ToBool replaces f's UInt8 field name by a bool field (ClickHouse
// 18.16 has no Bool type).
func uint8ToBool(f *data.Frame, name string) {
	for i, fl := range f.Fields {
		if fl.Name != name || fl.Type() != data.FieldTypeUint8 {
			continue
		}
		vals := make([]bool, fl.Len())
		for j := range vals {
			vals[j] = fl.At(j).(uint8) != 0
		}
		f.Fields[i] = data.NewField(name, fl.Labels, vals)
	}
}
