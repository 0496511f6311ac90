package logs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// readStore parses every line of the store files, oldest first.
func readStore(t *testing.T, path string, keep int) []Entry {
	t.Helper()
	var out []Entry
	for i := keep; i >= 0; i-- {
		p := path
		if i > 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		r := bufio.NewReader(f)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				e, ok := Parse(line)
				if !ok {
					t.Fatalf("%s: line %.200q is not an entry", p, line)
				}
				out = append(out, e)
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
	return out
}

// TestEntryRoundTrip: every entry the writer could make parses back as it
// was, the time to the nanosecond.
func TestEntryRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 3, 22, 13, 1, 5, time.UTC)
	for _, e := range []Entry{
		{Time: at, Stream: Stdout, Data: []byte("hello\n")},
		{Time: at, Stream: Stderr, Data: []byte("oops \x1e\r\n")},
		{Time: at, Stream: Console, Partial: true, Data: []byte("$ ")},
		{Time: at, Stream: Stdout, Data: []byte("\n")},
	} {
		line := e.Append(nil)
		if bytes.Count(line, []byte("\n")) != 1 {
			t.Errorf("%q: not one line", line)
		}
		got, ok := Parse(line)
		if !ok || !got.Time.Equal(e.Time) || got.Stream != e.Stream || got.Partial != e.Partial || string(got.Data) != string(e.Data) {
			t.Errorf("%q parsed as %+v, %v; want %+v", line, got, ok, e)
		}
	}
	// A line of a file the writer did not write: the console's, no time.
	if e, ok := Parse([]byte("plain output\r\n")); ok || e.Stream != Console || !e.Time.IsZero() || string(e.Data) != "plain output\r\n" {
		t.Errorf("plain line parsed as %+v, %v", e, ok)
	}
}

// TestWriterStreams: ferry-init's records keep their streams and pieces,
// untagged lines are the console's, each entry stamped as it arrives.
func TestWriterStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	clock := time.Date(2026, 12, 3, 22, 0, 0, 0, time.UTC)
	w := &Writer{Path: path, Max: 1 << 20, Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	console := guest.AppendRecord(nil, 1, []byte("out\n"))
	console = guest.AppendRecord(console, 2, []byte("err\n"))
	console = append(console, "[    1.000000] kernel says\r\n"...)
	console = guest.AppendRecord(console, 1, []byte("prompt> "))
	// Bytes arrive in any cut: one at a time here.
	for i := range console {
		w.Write(console[i : i+1])
	}
	w.Flush(true)
	w.Close()
	got := readStore(t, path, 0)
	want := []Entry{
		{Stream: Stdout, Data: []byte("out\n")},
		{Stream: Stderr, Data: []byte("err\n")},
		{Stream: Console, Data: []byte("[    1.000000] kernel says\r\n")},
		{Stream: Stdout, Partial: true, Data: []byte("prompt> ")},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		if g.Stream != want[i].Stream || g.Partial != want[i].Partial || string(g.Data) != string(want[i].Data) {
			t.Errorf("entry %d: %+v, want %+v", i, g, want[i])
		}
		if i > 0 && !g.Time.After(got[i-1].Time) {
			t.Errorf("entry %d stamped %v, not after the one before (%v)", i, g.Time, got[i-1].Time)
		}
	}
}

// TestCopyCapped: a flood far beyond the cap leaves every file under it,
// the newest entries kept, and a line longer than a record in pieces.
func TestCopyCapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	const capBytes = 64 << 10
	var in bytes.Buffer
	for i := 0; i < 20000; i++ {
		in.Write(guest.AppendRecord(nil, 1+i%2, []byte(fmt.Sprintf("line %d\n", i))))
	}
	in.Write(guest.AppendRecord(nil, 1, []byte(strings.Repeat("x", 3*guest.MaxRecordData)+"\n")))
	in.WriteString("untagged last line\n")
	if err := Copy(&in, path, capBytes, 2); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil || st.Size() > capBytes {
			t.Errorf("%s: %v, %d bytes over the %d cap", p, err, st.Size(), capBytes)
		}
	}
	got := readStore(t, path, 2)
	if last := got[len(got)-1]; last.Stream != Console || string(last.Data) != "untagged last line\n" {
		t.Errorf("last entry %+v", last)
	}
	long := 0
	for _, e := range got {
		if e.Stream == Stdout && bytes.Count(e.Data, []byte("x")) == len(bytes.TrimSuffix(e.Data, []byte("\n"))) && len(e.Data) > 100 {
			long += len(bytes.TrimSuffix(e.Data, []byte("\n")))
			if len(e.Data) > guest.MaxRecordData+1 {
				t.Errorf("a piece of %d bytes", len(e.Data))
			}
		}
	}
	if long != 3*guest.MaxRecordData {
		t.Errorf("the long line kept %d bytes, want %d", long, 3*guest.MaxRecordData)
	}
}

// TestCopyHostile: a console without newlines never makes the writer hold
// more than maxPending, and is kept in pieces.
func TestCopyHostile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	r := io.LimitReader(zeros{}, 4<<20)
	if err := Copy(r, path, 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	for _, e := range readStore(t, path, 1) {
		if len(e.Data) > maxPending {
			t.Fatalf("a piece of %d bytes", len(e.Data))
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestCopyIdlePrompt: an untagged line without a newline (a TTY's prompt)
// is written as a piece once the console goes quiet, before the console
// ends.
func TestCopyIdlePrompt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Copy(pr, path, 1<<20, 1) }()
	io.WriteString(pw, "login: ")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if e, ok := Parse(b); ok && e.Partial && string(e.Data) == "login: " {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the prompt was never written: %.200q", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWriterHostile: console lines that look like records but are not
// (an unknown version, stream or kind, a record too long for one, one cut
// off by the end) are kept as the console's, byte for byte and in pieces
// of at most maxPending: never attributed to a stream, never held whole.
func TestWriterHostile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	long := "\x1e11F" + strings.Repeat("a", 5*maxPending) + "\n"
	in := []string{
		"\x1e91Fa newer version\n",
		"\x1e13Fno such stream\n",
		"\x1e11Xno such kind\n",
		"\x1e\n",
		long,
		"\x1e12Fa real stderr line\n",
		"\x1e1", // cut off by the end
	}
	if err := Copy(strings.NewReader(strings.Join(in, "")), path, 1<<20, 1); err != nil {
		t.Fatal(err)
	}
	got := readStore(t, path, 1)
	var console strings.Builder
	for _, e := range got {
		if len(e.Data) > maxPending {
			t.Errorf("an entry of %d bytes, over %d", len(e.Data), maxPending)
		}
		switch e.Stream {
		case Console:
			console.Write(e.Data)
		case Stderr:
			if string(e.Data) != "a real stderr line\n" {
				t.Errorf("stderr entry %q", e.Data)
			}
		default:
			t.Errorf("entry %.60q attributed to %s", e.Data, e.Stream)
		}
	}
	want := strings.Join(in[:5], "") + in[6]
	if console.String() != want {
		t.Errorf("the console's entries hold %d bytes, want the %d that were not records", console.Len(), len(want))
	}
}
