package mkext4

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// sparseFile creates an empty file of size bytes (a hole) in a temp dir.
func sparseFile(t testing.TB, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// formatFile formats the file at path (size bytes) and returns what the
// writes were.
func formatFile(t testing.TB, path string, size int64, o Options) *recorder {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &recorder{w: f}
	if err := Format(rec, size, o); err != nil {
		t.Fatalf("Format(%d bytes): %v", size, err)
	}
	return rec
}

// recorder is a device that records the writes and syncs it passes on to
// w (or drops, if w is nil).
type recorder struct {
	w interface {
		WriteAt([]byte, int64) (int, error)
	}
	mu     sync.Mutex
	bytes  int64
	writes []span
	events []string // "write OFF" and "sync", in order
}

// span is one write: [off, off+len).
type span struct{ off, len int64 }

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.bytes += int64(len(p))
	r.writes = append(r.writes, span{off, int64(len(p))})
	r.events = append(r.events, "write "+strconv.FormatInt(off, 10))
	r.mu.Unlock()
	if r.w == nil {
		return len(p), nil
	}
	return r.w.WriteAt(p, off)
}

func (r *recorder) Sync() error {
	r.mu.Lock()
	r.events = append(r.events, "sync")
	r.mu.Unlock()
	if s, ok := r.w.(syncer); ok {
		return s.Sync()
	}
	return nil
}

// checkBounds fails t if any write fell outside [0, limit) or overlapped
// another.
func (r *recorder) checkBounds(t testing.TB, limit int64) {
	t.Helper()
	seen := map[int64]bool{}
	for _, w := range r.writes {
		if w.off < 0 || w.off+w.len > limit {
			t.Errorf("write [%d, %d) outside [0, %d)", w.off, w.off+w.len, limit)
		}
		for b := w.off; b < w.off+w.len; b += blockSize {
			if seen[b] {
				t.Errorf("block at byte %d written twice", b)
			}
			seen[b] = true
		}
	}
}

// allocated is the number of bytes the file at path occupies on disk.
func allocated(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// fsckLine matches the lines a clean e2fsck -fn run prints.
var fsckLine = regexp.MustCompile(`^(e2fsck \S+ \(.*\)|Pass [1-5]: Checking .*|\S+: \d+/\d+ files \(.*\), \d+/\d+ blocks)$`)

// fsckSummary matches e2fsck's last line: inodes and blocks in use.
var fsckSummary = regexp.MustCompile(`: (\d+)/(\d+) files .*, (\d+)/(\d+) blocks$`)

// fsck runs e2fsck -fn on path and fails t unless it exits 0 and prints
// nothing but its pass headers and summary. It returns inodes used and
// blocks used, as e2fsck counted them.
func fsck(t testing.TB, path string) (inodesUsed, blocksUsed uint64) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", path).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", path, err, out)
	}
	var summary []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := sc.Text(); !fsckLine.MatchString(l) {
			t.Errorf("e2fsck -fn complains: %q\n%s", l, out)
		} else if m := fsckSummary.FindStringSubmatch(l); m != nil {
			summary = m
		}
	}
	if summary == nil {
		t.Fatalf("e2fsck -fn printed no summary:\n%s", out)
	}
	return atou(t, summary[1]), atou(t, summary[3])
}

// dumpe2fs runs dumpe2fs -h on path and returns its "Key: value" lines.
func dumpe2fs(t testing.TB, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("dumpe2fs", "-h", path).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v", path, err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// runCmd runs a command and fails t with its output if it fails.
func runCmd(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// atou parses a decimal count.
func atou(t testing.TB, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return n
}

// mib formats a byte count for messages.
func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
