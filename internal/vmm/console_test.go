package vmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRotateConsoleAppendWriter checks copy-truncate with a writer that,
// like QEMU's append=on chardev, holds the file open O_APPEND: after
// rotation its writes land at the start of the emptied file.
func TestRotateConsoleAppendWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString(strings.Repeat("a", 100))
	if rotated, err := RotateConsole(path, 200, 2); err != nil || rotated {
		t.Fatalf("rotated=%v err=%v under the cap", rotated, err)
	}
	w.WriteString(strings.Repeat("b", 150))
	if rotated, err := RotateConsole(path, 200, 2); err != nil || !rotated {
		t.Fatalf("rotated=%v err=%v over the cap", rotated, err)
	}
	w.WriteString("after")
	if b, _ := os.ReadFile(path); string(b) != "after" {
		t.Errorf("live log %q, want %q (no hole, no old data)", b, "after")
	}
	if b, _ := os.ReadFile(path + ".1"); len(b) != 250 {
		t.Errorf("rotated copy has %d bytes, want 250", len(b))
	}
	w.WriteString(strings.Repeat("c", 300))
	RotateConsole(path, 200, 2)
	if b, _ := os.ReadFile(path + ".2"); len(b) != 250 {
		t.Errorf(".2 has %d bytes, want the older 250", len(b))
	}
	if b, _ := os.ReadFile(path + ".1"); !strings.HasPrefix(string(b), "after") {
		t.Errorf(".1 = %.20q…, want the newer copy", b)
	}
}

func TestRotatorRotatesAdded(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	os.WriteFile(a, make([]byte, 300), 0o640)
	os.WriteFile(b, make([]byte, 300), 0o640)
	r := &Rotator{Max: 100}
	r.Add(a)
	r.RotateAll()
	if fi, _ := os.Stat(a); fi.Size() != 0 {
		t.Errorf("a not rotated: %d bytes", fi.Size())
	}
	if fi, _ := os.Stat(b); fi.Size() != 300 {
		t.Errorf("b (never added) changed: %d bytes", fi.Size())
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vmm.log")
	os.WriteFile(p, []byte("a\nb\nc\n"), 0o600)
	if got := Tail(p, 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail(p+".missing", 2); got != "" {
		t.Errorf("Tail of a missing file = %q", got)
	}
}
