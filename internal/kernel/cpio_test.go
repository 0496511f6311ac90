package kernel

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func writeTestArchive(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	add := func(h Header, data string) {
		t.Helper()
		if h.Mode.IsRegular() {
			h.Size = int64(len(data))
		}
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if data != "" && h.Mode.IsRegular() {
			if _, err := w.Write([]byte(data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(Header{Name: "etc", Mode: fs.ModeDir | 0o755}, "")
	add(Header{Name: "etc/hostname", Mode: 0o644}, "ferry\n")
	add(Header{Name: "odd", Mode: 0o600}, "abc") // 3 bytes: forces padding
	add(Header{Name: "bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"}, "")
	add(Header{Name: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1}, "")
	add(Header{Name: "init", Mode: 0o755 | fs.ModeSetuid}, "#!/bin/sh\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriterRoundTrip(t *testing.T) {
	b := writeTestArchive(t)
	if len(b)%512 != 0 {
		t.Errorf("archive is %d bytes, want a multiple of 512", len(b))
	}
	got, err := readCPIO(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"drwxr-xr-x etc ",
		"-rw-r--r-- etc/hostname ferry\n",
		"-rw------- odd abc",
		"lrwxrwxrwx bin/sh busybox",
		"crw------- dev/console  5:1",
		"-rwxr-xr-x init #!/bin/sh\n",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		s := modeString(e.Mode) + " " + e.Name + " " + string(e.Data)
		if e.Major != 0 || e.Minor != 0 {
			s += " " + itoa(e.Major) + ":" + itoa(e.Minor)
		}
		if s != want[i] {
			t.Errorf("entry %d = %q, want %q", i, s, want[i])
		}
		if e.Name == "init" && e.Mode&0o4000 == 0 {
			t.Errorf("init lost its setuid bit: %o", e.Mode)
		}
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestWriterIsDeterministic(t *testing.T) {
	if !bytes.Equal(writeTestArchive(t), writeTestArchive(t)) {
		t.Error("same entries gave different bytes")
	}
}

func TestWriterSizeChecks(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); !errors.Is(err, ErrWriteTooLong) {
		t.Errorf("long write: err = %v, want ErrWriteTooLong", err)
	}
	w = NewWriter(&bytes.Buffer{})
	_ = w.WriteHeader(&Header{Name: "f", Mode: 0o644, Size: 2})
	if err := w.Close(); err == nil {
		t.Error("closing with a short entry succeeded")
	}
	if err := NewWriter(&bytes.Buffer{}).WriteHeader(&Header{Name: "/", Mode: 0o644}); err == nil {
		t.Error("empty name accepted")
	}
}

// TestWriterAgreesWithGNUCpio lists and extracts the archive with cpio(1).
func TestWriterAgreesWithGNUCpio(t *testing.T) {
	cpio := prereq.Tool(t, "cpio")
	b := writeTestArchive(t)
	cmd := exec.Command(cpio, "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, out)
	}
	want := "etc\netc/hostname\nodd\nbin/sh\ndev/console\ninit\n"
	if string(out) != want {
		t.Errorf("cpio -it listed:\n%s\nwant:\n%s", out, want)
	}
	dir := t.TempDir()
	cmd = exec.Command(cpio, "-id", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "etc/hostname")); string(got) != "ferry\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "busybox" {
		t.Errorf("bin/sh -> %q, want busybox", l)
	}
}
