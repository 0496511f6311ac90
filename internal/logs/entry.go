package logs

import (
	"bytes"
	"time"
)

// Stream is where an entry's data came from.
type Stream string

// Streams.
const (
	Stdout  Stream = "stdout"
	Stderr  Stream = "stderr"
	Console Stream = "console" // an untagged console line
)

// Entry is one line of the store, or a piece of one.
type Entry struct {
	Time   time.Time // zero for a line of a file the writer did not write
	Stream Stream
	// Partial: Data is a piece of a line (no newline of its own).
	Partial bool
	// Data is what was written: a whole line ends in '\n'.
	Data []byte
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// entries sort as text and parse back exactly.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Append appends e's line in the store's format.
func (e Entry) Append(dst []byte) []byte {
	dst = e.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, ' ')
	dst = append(dst, e.Stream...)
	data := e.Data
	if !e.Partial && len(data) > 0 && data[len(data)-1] == '\n' {
		data = data[:len(data)-1]
		dst = append(dst, " F "...)
	} else {
		dst = append(dst, " P "...)
	}
	dst = append(dst, data...)
	return append(dst, '\n')
}

// Parse decodes one line of a store file (with or without its '\n'). A
// line not in the store's format (a console file the VMM wrote itself, a
// machine older than the store) is a console entry without a time: ok is
// false, e its data.
func Parse(line []byte) (e Entry, ok bool) {
	body, nl := bytes.CutSuffix(line, []byte("\n"))
	if len(body) > len(timeLayout) && body[len(timeLayout)] == ' ' {
		t, err := time.Parse(timeLayout, string(body[:len(timeLayout)]))
		rest := body[len(timeLayout)+1:]
		if err == nil {
			for _, s := range []Stream{Stdout, Stderr, Console} {
				r, found := bytes.CutPrefix(rest, []byte(string(s)+" "))
				if !found || len(r) < 2 || r[1] != ' ' || (r[0] != 'F' && r[0] != 'P') {
					continue
				}
				e := Entry{Time: t, Stream: s, Partial: r[0] == 'P', Data: r[2:]}
				if !e.Partial {
					e.Data = append(e.Data[:len(e.Data):len(e.Data)], '\n')
				}
				return e, true
			}
		}
	}
	return Entry{Stream: Console, Partial: !nl, Data: line}, false
}
