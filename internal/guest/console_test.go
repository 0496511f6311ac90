package guest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConsoleExitReadsTheTail: the last marker wins, a marker only in the
// rotated copy is found, and only the end of a large log is read (a
// marker further back than ConsoleTail is not seen).
func TestConsoleExitReadsTheTail(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "console.log")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ConsoleExit(log); ok {
		t.Fatal("an exit from a missing log")
	}
	write(log+".1", "out\r\n[    1.000000] "+ConsoleExitLine(ExitStatus{Code: 4})+"\r\n")
	write(log, "booting again\r\n")
	if s, ok := ConsoleExit(log); !ok || s.Code != 4 {
		t.Errorf("marker in the rotated copy: %+v, %v", s, ok)
	}
	write(log, ConsoleExitLine(ExitStatus{Code: 1})+"\n"+ConsoleExitLine(ExitStatus{Code: 9, Signal: 9})+"\n")
	if s, ok := ConsoleExit(log); !ok || s.Code != 9 || s.Signal != 9 {
		t.Errorf("two markers: %+v, %v; want the last", s, ok)
	}
	big := ConsoleExitLine(ExitStatus{Code: 2}) + "\n" + strings.Repeat("x", ConsoleTail) + "\n"
	write(log, big)
	write(log+".1", "")
	if s, ok := ConsoleExit(log); ok {
		t.Errorf("found %+v further back than the tail: the whole log was read", s)
	}
}

func TestPlatformLine(t *testing.T) {
	for line, want := range map[string]bool{
		"[    6.537570] virtio_blk: loaded\n":  true,
		"[12345.000001] x":                     true,
		ConsoleExitLine(ExitStatus{}) + "\r\n": true,
		"hello\n":                              false,
		"[1.5] not printk\n":                   false,
		"[    6.537570]x":                      false,
		"[ 1.123456]":                          false,
		"":                                     false,
	} {
		if got := PlatformLine([]byte(line)); got != want {
			t.Errorf("PlatformLine(%q) = %v, want %v", line, got, want)
		}
	}
}
