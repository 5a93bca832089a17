package legacy

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/pathstats/pathstats"
)

// Export formats.
const (
	FormatJSON   = "json"   // one JSON array
	FormatNDJSON = "ndjson" // one JSON object per line
)

// exportPage is how many instances the export reads per query.
const exportPage = 1000

// Record is one exported instance, as written by Export.
type Record struct {
	Name             string      `json:"name"`
	Path             string      `json:"path"`
	ProxyID          string      `json:"proxyId"`
	RequestCount     int64       `json:"requestCount"`
	ErrorCount       int64       `json:"errorCount"`
	ClientErrorCount int64       `json:"clientErrorCount"`
	LastAccessed     int64       `json:"lastAccessed"` // unix ms, 0 if never
	Hourly           []HourCount `json:"hourly"`
}

// HourCount is one hour of a Record. ClientErrors is an addition to the
// plan's {hourBucket, requests, errors}.
type HourCount struct {
	HourBucket   int64 `json:"hourBucket"` // unix seconds of the UTC hour
	Requests     int64 `json:"requests"`
	Errors       int64 `json:"errors"`
	ClientErrors int64 `json:"clientErrors"`
}

// checkFormat validates an export format ("" is json).
func checkFormat(format string) (string, error) {
	switch format {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatNDJSON:
		return FormatNDJSON, nil
	}
	return "", pathstats.Errorf(pathstats.EInvalidParameter, "format must be json or ndjson")
}

// Export flushes the live state, then streams every stored instance to w in
// name order (json: one array, ndjson: one Record per line), reading 1,000
// instances at a time from one read transaction, so memory stays constant
// and the export is a consistent snapshot. progress, if set, is called after
// each page with the instances written and the total.
func (s *System) Export(ctx context.Context, w io.Writer, format string, progress func(done, total int)) error {
	format, err := checkFormat(format)
	if err != nil {
		return err
	}
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.settle(ctx); err != nil {
		return err
	}
	return s.stream(ctx, w, format, progress)
}

// stream writes the stored instances without flushing.
func (s *System) stream(ctx context.Context, w io.Writer, format string, progress func(done, total int)) error {
	tx, err := s.store.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer tx.Rollback()
	var total int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM instances`).Scan(&total); err != nil {
		return fmt.Errorf("export count: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `SELECT name, path, proxy_id, requests, errors, client_errors, last_accessed, hourly
		FROM instances WHERE name > ? ORDER BY name LIMIT ?`)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer stmt.Close()
	ex := exporter{bw: bufio.NewWriterSize(w, 64<<10), json: format == FormatJSON}
	if ex.json {
		ex.bw.WriteByte('[')
	}
	for {
		n, err := ex.page(ctx, stmt)
		if err != nil {
			return err
		}
		if progress != nil {
			progress(ex.done, total)
		}
		if n < exportPage {
			break
		}
	}
	if ex.json {
		ex.bw.WriteString("\n]\n")
	}
	if err := ex.bw.Flush(); err != nil {
		return fmt.Errorf("export write: %w", err)
	}
	return nil
}

// exporter holds the reusable buffers of one export.
type exporter struct {
	bw    *bufio.Writer
	json  bool
	buf   []byte
	after []byte // last name written: the next page starts after it
	done  int
}

// page writes the next page of instances and returns how many it wrote.
func (ex *exporter) page(ctx context.Context, stmt *sql.Stmt) (int, error) {
	rows, err := stmt.QueryContext(ctx, string(ex.after), exportPage)
	if err != nil {
		return 0, fmt.Errorf("export page: %w", err)
	}
	defer rows.Close()
	var (
		name, path, proxy, hourly sql.RawBytes
		req, errs, cerrs, last    int64
		n                         int
	)
	for rows.Next() {
		if err := rows.Scan(&name, &path, &proxy, &req, &errs, &cerrs, &last, &hourly); err != nil {
			return n, fmt.Errorf("export row: %w", err)
		}
		b := ex.buf[:0]
		if ex.json {
			if ex.done > 0 {
				b = append(b, ',')
			}
			b = append(b, '\n')
		}
		b, err = appendRecord(b, name, path, proxy, req, errs, cerrs, last, hourly)
		if err != nil {
			return n, err
		}
		if !ex.json {
			b = append(b, '\n')
		}
		if _, err := ex.bw.Write(b); err != nil {
			return n, fmt.Errorf("export write: %w", err)
		}
		ex.buf = b
		ex.after = append(ex.after[:0], name...)
		ex.done++
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("export page: %w", err)
	}
	return n, nil
}

// appendRecord appends one instance as a JSON object (the Record shape).
func appendRecord(b, name, path, proxy []byte, req, errs, cerrs, last int64, hourly []byte) ([]byte, error) {
	b = append(b, `{"name":`...)
	b = appendString(b, name)
	b = append(b, `,"path":`...)
	b = appendString(b, path)
	b = append(b, `,"proxyId":`...)
	b = appendString(b, proxy)
	b = append(b, `,"requestCount":`...)
	b = strconv.AppendInt(b, req, 10)
	b = append(b, `,"errorCount":`...)
	b = strconv.AppendInt(b, errs, 10)
	b = append(b, `,"clientErrorCount":`...)
	b = strconv.AppendInt(b, cerrs, 10)
	b = append(b, `,"lastAccessed":`...)
	b = strconv.AppendInt(b, last, 10)
	b = append(b, `,"hourly":[`...)
	r := newHourlyReader(hourly)
	for i := 0; ; i++ {
		h, ok := r.next()
		if !ok {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"hourBucket":`...)
		b = strconv.AppendInt(b, h.hour, 10)
		b = append(b, `,"requests":`...)
		b = strconv.AppendInt(b, h.requests, 10)
		b = append(b, `,"errors":`...)
		b = strconv.AppendInt(b, h.errors, 10)
		b = append(b, `,"clientErrors":`...)
		b = strconv.AppendInt(b, h.clientErrors, 10)
		b = append(b, '}')
	}
	if r.err != nil {
		return b, fmt.Errorf("export instance %s: %w", name, r.err)
	}
	return append(b, "]}"...), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
