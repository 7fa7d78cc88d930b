package plugin

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Limits of the raw SQL query type.
const (
	maxSQLLen        = 100 << 10 // bytes of SQL
	sqlMaxRows       = 100000    // rows returned; more are cut off
	sqlMaxSeconds    = 30        // ClickHouse's max_execution_time
	sqlReadonlyLevel = 2         // reads only; settings may change, readonly itself not
)

// sqlForbidden are words refused anywhere outside strings, quoted names
// and comments, unless called as a function (replace(s, a, b)): every
// statement but SELECT, and the clauses that write files or raise the
// query's limits.
var sqlForbidden = []string{
	"INSERT", "ALTER", "DROP", "SYSTEM", "SET", "CREATE", "ATTACH", "DETACH", "RENAME", "TRUNCATE",
	"OPTIMIZE", "KILL", "GRANT", "REVOKE", "DELETE", "UPDATE", "USE", "EXCHANGE", "UNDROP", "REPLACE",
	"OUTFILE", "SETTINGS", "CHECK", "BACKUP", "RESTORE", "MOVE", "UNDO", "COMMIT", "ROLLBACK", "BEGIN",
}

// sqlTableFunctions are refused when called: they reach other servers,
// files or programs.
var sqlTableFunctions = []string{
	"URL", "URLCLUSTER", "FILE", "FILECLUSTER", "REMOTE", "REMOTESECURE", "CLUSTER", "CLUSTERALLREPLICAS",
	"MYSQL", "POSTGRESQL", "JDBC", "ODBC", "HDFS", "HDFSCLUSTER", "S3", "S3CLUSTER", "GCS", "AZUREBLOBSTORAGE",
	"INPUT", "EXECUTABLE", "SQLITE", "MONGODB", "REDIS", "DELTALAKE", "HUDI", "ICEBERG",
}

var (
	timeFilterMacro = regexp.MustCompile(`\$__timeFilter\(([^()]*)\)`)
	anyMacro        = regexp.MustCompile(`\$__[A-Za-z_]+`)
)

// sql answers QueryTypeSQL: the analyst's SELECT with its macros expanded
// (expandMacros), checked (checkSelect) and run with readonly = 2,
// max_execution_time = 30 s. At most 100,000 rows are read; the frame
// says so in a notice when there were more. (18.16's native protocol
// takes only integer settings from clickhouse-go, so the cut is made
// here, not with result_overflow_mode.) One frame, "sql", a field per
// column (readRows), with the SQL run as its executed query string.
func (q *Queries) sql(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m SQLQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	stmt, err := expandMacros(m.SQL, r)
	if err != nil {
		return nil, err
	}
	if stmt, err = checkSelect(stmt); err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(sqlContext(ctx), stmt)
	if err != nil {
		return nil, err // ClickHouse's message is the analyst's answer
	}
	defer rows.Close()
	f, cut, err := readRows("sql", rows, sqlMaxRows)
	if err != nil {
		return nil, err
	}
	meta := &data.FrameMeta{ExecutedQueryString: stmt}
	if cut {
		meta.Notices = []data.Notice{{Severity: data.NoticeSeverityWarning,
			Text: fmt.Sprintf("only the first %d rows are shown: add a LIMIT or aggregate", sqlMaxRows)}}
	}
	f.SetMeta(meta)
	return data.Frames{f}, nil
}

// sqlContext carries the settings of every raw SQL query.
func sqlContext(ctx context.Context) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"readonly":           sqlReadonlyLevel,
		"max_execution_time": sqlMaxSeconds,
	}))
}

// expandMacros replaces $__timeFilter(column) with "column BETWEEN
// toDateTime(from) AND toDateTime(to)", $__timeFrom and $__timeTo with
// toDateTime(from) and toDateTime(to), and $__interval_s with the
// bucket width in seconds. Any other $__ name is an error.
func expandMacros(sql string, r *queryRequest) (string, error) {
	if strings.TrimSpace(sql) == "" {
		return "", invalidf("rawSql: required")
	}
	if len(sql) > maxSQLLen {
		return "", invalidf("rawSql: %d bytes, at most %d", len(sql), maxSQLLen)
	}
	from := "toDateTime(" + strconv.FormatInt(r.from, 10) + ")"
	to := "toDateTime(" + strconv.FormatInt(r.to, 10) + ")"
	var bad string
	sql = timeFilterMacro.ReplaceAllStringFunc(sql, func(s string) string {
		col := strings.TrimSpace(timeFilterMacro.FindStringSubmatch(s)[1])
		if col == "" {
			bad = "$__timeFilter() needs a column: $__timeFilter(time)"
			return s
		}
		return col + " BETWEEN " + from + " AND " + to
	})
	if bad != "" {
		return "", invalidf("rawSql: %s", bad)
	}
	sql = strings.NewReplacer("$__timeFrom", from, "$__timeTo", to, "$__interval_s", strconv.FormatInt(r.step, 10)).Replace(sql)
	if m := anyMacro.FindString(sql); m != "" {
		return "", invalidf("rawSql: unknown macro %s, want $__timeFilter(column), $__timeFrom, $__timeTo or $__interval_s", m)
	}
	return sql, nil
}

// sqlToken is a word (upper-cased, outside quotes) or one punctuation
// byte of a statement, and where it starts.
type sqlToken struct {
	text string
	word bool
	pos  int
}

// lexSQL splits sql into tokens the way ClickHouse reads it, dropping
// whitespace, comments (--, #, /* */), string literals and quoted names,
// so that a keyword is only ever seen where the server would see one.
// Where the two might differ (nested comments, heredoc strings) the lexer
// sees more code than the server, never less: it may refuse a valid
// query but never lets a hidden statement through.
func lexSQL(sql string) ([]sqlToken, error) {
	var out []sqlToken
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return out, nil
			}
			i += j + 1
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			j := strings.Index(sql[i+2:], "*/")
			if j < 0 {
				return nil, invalidf("rawSql: a /* comment is not closed")
			}
			i += 2 + j + 2
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '\\' {
					j++
					continue
				}
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c { // doubled quote
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				return nil, invalidf("rawSql: a %c quote opened at byte %d is not closed", c, i)
			}
			if c != '\'' {
				out = append(out, sqlToken{text: "name", pos: i})
			} else {
				out = append(out, sqlToken{text: "'", pos: i})
			}
			i = j + 1
		case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			j := i + 1
			for j < len(sql) && (sql[j] == '_' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			out = append(out, sqlToken{text: strings.ToUpper(sql[i:j]), word: true, pos: i})
			i = j
		default:
			out = append(out, sqlToken{text: sql[i : i+1], pos: i})
			i++
		}
	}
	return out, nil
}

// checkSelect returns sql if it is one SELECT (or WITH … SELECT)
// statement, without a trailing semicolon; otherwise an error that says
// what is refused. It is a guard in front of the read-only setting, not
// instead of it.
func checkSelect(sql string) (string, error) {
	toks, err := lexSQL(sql)
	if err != nil {
		return "", err
	}
	if n := len(toks); n > 0 && toks[n-1].text == ";" {
		sql, toks = sql[:toks[n-1].pos], toks[:n-1]
	}
	if len(toks) == 0 {
		return "", invalidf("rawSql: no statement")
	}
	if t := toks[0]; !t.word || t.text != "SELECT" && t.text != "WITH" {
		return "", invalidf("rawSql: must be a SELECT statement, not one starting with %q", sql[t.pos:t.pos+len(t.text)])
	}
	for i, t := range toks {
		qualified := i > 0 && toks[i-1].text == "." || i+1 < len(toks) && toks[i+1].text == "."
		switch {
		case t.text == ";":
			return "", invalidf("rawSql: one statement only (a ; at byte %d)", t.pos)
		case !t.word || qualified: // a name in db.table or t.column
		case slices.Contains(sqlForbidden, t.text) && (i+1 >= len(toks) || toks[i+1].text != "("):
			return "", invalidf("rawSql: %s is not allowed, only a single SELECT", t.text)
		case i+1 < len(toks) && toks[i+1].text == "(" && slices.Contains(sqlTableFunctions, t.text):
			return "", invalidf("rawSql: the table function %s is not allowed", strings.ToLower(t.text))
		case t.text == "FORMAT" && (i+1 >= len(toks) || toks[i+1].text != "("):
			return "", invalidf("rawSql: a FORMAT clause is not allowed (Grafana reads the native result)")
		case t.text == "INTO":
			return "", invalidf("rawSql: INTO is not allowed, only a single SELECT")
		}
	}
	return sql, nil
}
