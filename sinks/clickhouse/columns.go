package clickhouse

import (
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// field is one column of a table being filled from rows of type R: its
// name, how to read its value from a row, and the values of the batch in
// hand. Columns are appended whole to the driver's batch, which is much
// cheaper than appending row by row through reflection.
type field[R any] interface {
	column() string
	add(r R)
	flush(b driver.Batch, i int) error
	reset()
}

type typed[R, T any] struct {
	name string
	get  func(R) T
	vals []T
}

func (f *typed[R, T]) column() string { return f.name }
func (f *typed[R, T]) add(r R)        { f.vals = append(f.vals, f.get(r)) }
func (f *typed[R, T]) reset()         { clear(f.vals); f.vals = f.vals[:0] }
func (f *typed[R, T]) flush(b driver.Batch, i int) error {
	if err := b.Column(i).Append(f.vals); err != nil {
		return fmt.Errorf("column %s: %w", f.name, err)
	}
	return nil
}

// col declares a column named name whose value is get(row).
func col[R, T any](name string, get func(R) T) field[R] {
	return &typed[R, T]{name: name, get: get}
}

// table is a batch under construction for one ClickHouse table.
type table[R any] struct {
	name   string
	fields []field[R]
	rows   int
}

func newTable[R any](name string, fields []field[R]) *table[R] {
	return &table[R]{name: name, fields: fields}
}

// insert is the INSERT statement, naming every column (ClickHouse 18.16
// needs the names; they also keep the writer working when a later
// migration adds columns).
func (t *table[R]) insert(db string) string {
	names := make([]string, len(t.fields))
	for i, f := range t.fields {
		names[i] = f.column()
	}
	return "INSERT INTO " + db + "." + t.name + " (" + strings.Join(names, ", ") + ")"
}

func (t *table[R]) add(r R) {
	for _, f := range t.fields {
		f.add(r)
	}
	t.rows++
}

func (t *table[R]) flush(b driver.Batch) error {
	for i, f := range t.fields {
		if err := f.flush(b, i); err != nil {
			return fmt.Errorf("filling %s: %w", t.name, err)
		}
	}
	return nil
}

func (t *table[R]) reset() {
	for _, f := range t.fields {
		f.reset()
	}
	t.rows = 0
}
