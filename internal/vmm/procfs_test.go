package vmm

import (
	"errors"
	"os"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestStatFields(t *testing.T) {
	// A command name with spaces and ')' — fields count after the last ')'.
	line := "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 987654 1000000 200 0"
	if st, err := parseStatStartTime(line); err != nil || st != 987654 {
		t.Errorf("start time %d, %v", st, err)
	}
	if u, err := statField(line, 14); err != nil || u != 17 {
		t.Errorf("utime %d, %v", u, err)
	}
	if _, err := statField("1 (x) S 1", 22); err == nil {
		t.Error("a short line parsed")
	}
	if _, err := CPUTicks(os.Getpid()); err != nil {
		t.Errorf("CPUTicks(self): %v", err)
	}
	if rss, err := RSSBytes(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("RSSBytes(self) = %d, %v", rss, err)
	}
	if _, err := CPUTicks(1 << 30); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("CPUTicks of no process: %v", err)
	}
}
