package initd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// record is one console record as the host parses it.
type record struct {
	fd      int
	partial bool
	data    string
}

// parseConsole splits a console into its records; a line that is not one
// fails the test.
func parseConsole(t *testing.T, console string) []record {
	t.Helper()
	var out []record
	for _, l := range strings.SplitAfter(console, "\n") {
		if l == "" {
			continue
		}
		fd, partial, data, ok := guest.ParseRecord([]byte(l))
		if !ok || !strings.HasSuffix(l, "\n") {
			t.Fatalf("console line %.200q is not a record (console %.400q)", l, console)
		}
		out = append(out, record{fd, partial, string(data)})
	}
	return out
}

// joined is each stream's text, pieces joined and whole lines ended.
func joined(recs []record) (stdout, stderr string) {
	var b [3]strings.Builder
	for _, r := range recs {
		b[r.fd].WriteString(r.data)
		if !r.partial {
			b[r.fd].WriteByte('\n')
		}
	}
	return b[1].String(), b[2].String()
}

// TestConsoleRecordsDecision: records only without a TTY and only when the
// host reads them (an older host gets the plain console), at the highest
// version both know.
func TestConsoleRecordsDecision(t *testing.T) {
	for _, c := range []struct {
		cfg  *guest.RunConfig
		want int
	}{
		{&guest.RunConfig{}, 0},
		{&guest.RunConfig{ConsoleRecords: 1}, 1},
		{&guest.RunConfig{ConsoleRecords: 1, TTY: true}, 0},
		{&guest.RunConfig{ConsoleRecords: 99}, guest.RecordVersion},
		{nil, 0},
	} {
		if got := consoleRecords(c.cfg); got != c.want {
			t.Errorf("%+v: version %d, want %d", c.cfg, got, c.want)
		}
	}
}

// TestEntrypointRecords: without a TTY and with records asked for, the
// unattached entrypoint's stdout and stderr reach the console as records
// of their own stream, in order within each, pieces for a line without
// its newline and for a line longer than a record, and all of it is on
// the console before init sees the exit (its exit line comes after).
func TestEntrypointRecords(t *testing.T) {
	script := `i=0; while [ $i -lt 200 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done
head -c 40000 /dev/zero | tr '\0' x; echo
printf 'no newline'; exit 4`
	in, _, console := attachInit(t, false, 0, "/bin/sh", "-c", script)
	in.cfg.Attach, in.cfg.ConsoleRecords = false, guest.RecordVersion
	if err := in.spawnEntrypoint(); err != nil {
		t.Fatal(err)
	}
	var got string
	select {
	case ws := <-in.exitCh:
		got = console.String() // what the console had when the exit came
		if ex := in.entryStatus(ws); ex.Code != 4 {
			t.Fatalf("exit %+v", ex)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit")
	}
	recs := parseConsole(t, got)
	stdout, stderr := joined(recs)
	var wantOut, wantErr strings.Builder
	for i := range 200 {
		fmt.Fprintf(&wantOut, "out %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	wantOut.WriteString(strings.Repeat("x", 40000) + "\nno newline")
	if stdout != wantOut.String() {
		t.Errorf("stdout: %d bytes, want %d (ends %q)", len(stdout), wantOut.Len(), stdout[max(0, len(stdout)-40):])
	}
	if stderr != wantErr.String() {
		t.Errorf("stderr %q", stderr[:min(len(stderr), 200)])
	}
	for _, r := range recs {
		if len(r.data) > guest.MaxRecordData {
			t.Errorf("a record of %d bytes", len(r.data))
		}
	}
	if last := recs[len(recs)-1]; last != (record{1, true, "no newline"}) {
		t.Errorf("last record %+v", last)
	}
}

// TestAttachedEntrypointRecords: `run -i` without a tty: the host's
// streams stay apart and the console's copy keeps each line's stream.
func TestAttachedEntrypointRecords(t *testing.T) {
	in, c, console := attachInit(t, false, 0, "/bin/sh", "-c", "echo out; echo err >&2; exit 2")
	in.cfg.ConsoleRecords = guest.RecordVersion
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() { _, _ = in.waitAttached() }()
	p, err := c.Exec(ctx, guest.ExecRequest{Entrypoint: true})
	if err != nil {
		t.Fatal(err)
	}
	outc, errc := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(p.Stdout); outc <- string(b) }()
	go func() { b, _ := io.ReadAll(p.Stderr); errc <- string(b) }()
	if ex, err := p.Wait(ctx); err != nil || ex.Code != 2 {
		t.Fatalf("exit %+v %v", ex, err)
	}
	if o, e := <-outc, <-errc; o != "out\n" || e != "err\n" {
		t.Fatalf("stdout %q stderr %q", o, e)
	}
	stdout, stderr := joined(parseConsole(t, console.String()))
	if stdout != "out\n" || stderr != "err\n" {
		t.Fatalf("console: stdout %q stderr %q", stdout, stderr)
	}
}

// TestRecordConsoleConcurrent: two streams writing at once never tear a
// record, and each stream's records keep their order.
func TestRecordConsoleConcurrent(t *testing.T) {
	var console syncBuffer
	rc := newRecordConsole(&console)
	var wg sync.WaitGroup
	for fd := 1; fd <= 2; fd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := rc.stream(fd)
			for i := range 500 {
				fmt.Fprintf(w, "%d line %d\n", fd, i)
			}
		}()
	}
	wg.Wait()
	stdout, stderr := joined(parseConsole(t, console.String()))
	for fd, got := range []string{stdout, stderr} {
		var want bytes.Buffer
		for i := range 500 {
			fmt.Fprintf(&want, "%d line %d\n", fd+1, i)
		}
		if got != want.String() {
			t.Errorf("fd %d: %q…", fd+1, got[:min(len(got), 100)])
		}
	}
}
