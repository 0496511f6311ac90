package inittest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// TestBootConsoleRecords: with console records asked for and no TTY, a
// real boot's console carries the entrypoint's stdout and stderr as
// records of their stream, each in order, as written (the tty's output
// processing off: no "\r"), all of them before the exit line, however
// much was written just before the exit and although a background child
// still holds both pipes.
func TestBootConsoleRecords(t *testing.T) {
	t.Parallel()
	e := Setup(t)
	script := `#!/bin/sh
i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done
(sleep 30 &)
head -c 100000 /dev/zero | tr '\0' x
echo
printf 'last, no newline'
exit 6
`
	base := e.Rootfs(t, map[string]string{"/entry.sh": script})
	cfg := baseConfig("/entry.sh")
	cfg.Debug = false
	cfg.ConsoleRecords = guest.RecordVersion
	// The kernel's console log level as ferry boots it: the kernel's
	// messages go to the UART beside the tty and would land inside records.
	b := e.Start(t, cfg, Disks{Base: base, Scratch: Scratch(t, 64)}, Options{Append: guest.KernelCmdline})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := b.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := c.Wait(ctx)
	c.Close()
	res, qerr := b.Wait()
	if err != nil || qerr != nil || ex.Code != 6 {
		t.Fatalf("exit %+v, wait: %v, qemu: %v\nconsole:\n%.2000s", ex, err, qerr, res.Console)
	}
	var streams [3]strings.Builder
	lastRecord, exitLine := -1, -1
	lines := strings.SplitAfter(res.Console, "\n")
	for i, l := range lines {
		if _, ok := guest.ParseConsoleExit(l); ok {
			exitLine = i
		}
		fd, partial, data, ok := guest.ParseRecord([]byte(l))
		if !ok {
			continue
		}
		if strings.Contains(string(data), "\r") {
			t.Errorf("record %.80q: the console tty still turns \\n into \\r\\n", l)
		}
		streams[fd].Write(data)
		if !partial {
			streams[fd].WriteByte('\n')
		}
		lastRecord = i
	}
	var wantOut, wantErr strings.Builder
	for i := range 300 {
		fmt.Fprintf(&wantOut, "out %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	wantOut.WriteString(strings.Repeat("x", 100000) + "\nlast, no newline")
	if got := streams[1].String(); got != wantOut.String() {
		t.Errorf("stdout records: %d bytes, want %d; ends %q", len(got), wantOut.Len(), got[max(0, len(got)-60):])
	}
	if got := streams[2].String(); got != wantErr.String() {
		t.Errorf("stderr records: %d bytes, want %d; ends %q", len(got), wantErr.Len(), got[max(0, len(got)-60):])
	}
	if exitLine < 0 || exitLine < lastRecord {
		t.Errorf("exit line at console line %d, the last record at %d: output came after the exit", exitLine, lastRecord)
	}
	if t.Failed() {
		t.Logf("console (end):\n%s", res.Console[max(0, len(res.Console)-3000):])
	}
}
