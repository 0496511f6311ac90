package guest

import (
	"bytes"
	"strings"
	"testing"
)

// TestRecords: data on each fd becomes one record per line, pieces for
// what has no newline or is too long, and parses back with its fd.
func TestRecords(t *testing.T) {
	long := strings.Repeat("y", MaxRecordData+10)
	type rec struct {
		fd      int
		partial bool
		data    string
	}
	for _, c := range []struct {
		name string
		fd   int
		in   string
		want []rec
	}{
		{"lines", 1, "a\nb\n", []rec{{1, false, "a"}, {1, false, "b"}}},
		{"stderr with a piece", 2, "err\nprompt ", []rec{{2, false, "err"}, {2, true, "prompt "}}},
		{"empty line", 1, "\n", []rec{{1, false, ""}}},
		{"long", 1, long + "\n", []rec{{1, true, long[:MaxRecordData]}, {1, false, long[MaxRecordData:]}}},
		{"bytes kept", 2, "\x1e\r\x00\n", []rec{{2, false, "\x1e\r\x00"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := AppendRecord(nil, c.fd, []byte(c.in))
			lines := bytes.SplitAfter(b, []byte("\n"))
			lines = lines[:len(lines)-1] // after the last newline: nothing
			if len(lines) != len(c.want) {
				t.Fatalf("%q: %d records, want %d", b, len(lines), len(c.want))
			}
			for i, l := range lines {
				fd, partial, data, ok := ParseRecord(l)
				if !ok || fd != c.want[i].fd || partial != c.want[i].partial || string(data) != c.want[i].data {
					t.Errorf("record %q: %d %v %q %v, want %+v", l, fd, partial, data, ok, c.want[i])
				}
			}
		})
	}
	for _, l := range []string{"plain\n", "[    1.000000] kernel\n", "\x1e9" + "1Fnewer version\n", "\x1e13Fno such fd\n", "\x1e11Xbad tag\n", "\x1e1"} {
		if _, _, _, ok := ParseRecord([]byte(l)); ok {
			t.Errorf("%q parsed as a record", l)
		}
	}
}
