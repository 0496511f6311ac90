package machine

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// The archive helper is asked for by argv, as root; its tree streams
// become tars both ways, and its exit codes error kinds.
func TestCopyThroughTheArchiveHelper(t *testing.T) {
	w := newWorld()
	w.hold = true
	var got []string
	var received []string
	w.run = func(req guest.ExecRequest, stdio guest.ExecIO) guest.ExitStatus {
		got = append(got, fmt.Sprintf("%s %s", strings.Join(req.Argv, " "), req.User))
		switch req.Argv[2] {
		case guest.ArchiveGet:
			if req.Argv[3] == "/missing" {
				fmt.Fprint(stdio.Stderr, "no such file or directory: /missing")
				return guest.ExitStatus{Code: guest.ArchiveNotFound}
			}
			tw := guest.NewTreeWriter(stdio.Stdout)
			_ = tw.WriteEntry(&guest.TreeEntry{Name: "hostname", Type: guest.TreeReg, Mode: 0o644, Size: 3})
			_, _ = tw.Write([]byte("vm\n"))
			_ = tw.Close()
		case guest.ArchivePut:
			tr := guest.NewTreeReader(stdio.Stdin)
			for e, err := tr.Next(); err == nil; e, err = tr.Next() {
				b, _ := io.ReadAll(tr)
				received = append(received, e.Name+"="+string(b))
			}
		}
		return guest.ExitStatus{}
	}
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := m.CopyFrom(ctx, "", mc.ID, "/etc/hostname", &out); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	h, err := tr.Next()
	if err != nil || h.Name != "hostname" || h.Size != 3 {
		t.Fatalf("tar entry %+v %v", h, err)
	}
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	_ = tw.WriteHeader(&tar.Header{Name: "./new.txt", Mode: 0o600, Size: 2, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("hi"))
	_ = tw.Close()
	if err := m.CopyTo(ctx, "", mc.ID, "/tmp", &in); err != nil {
		t.Fatal(err)
	}
	if strings.Join(received, ",") != "new.txt=hi" {
		t.Fatalf("the helper received %q", received)
	}
	if err := m.CopyFrom(ctx, "", mc.ID, "/missing", io.Discard); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("copy of a missing path: %v, want not found", err)
	}
	// Each copy waits for the boot first (the ready check), then runs the helper.
	got = slices.DeleteFunc(got, func(c string) bool { return strings.Contains(c, " ferry-build ready ") })
	want := "/proc/1/exe ferry-archive get /etc/hostname 0"
	if len(got) != 3 || got[0] != want || !strings.HasPrefix(got[1], "/proc/1/exe ferry-archive put /tmp") {
		t.Fatalf("helper calls %q, want %q first", got, want)
	}
}

func TestProcessesThroughTheLister(t *testing.T) {
	w := newWorld()
	w.hold = true
	w.run = func(req guest.ExecRequest, stdio guest.ExecIO) guest.ExitStatus {
		if strings.Join(req.Argv, " ") != "/proc/1/exe ferry-ps" || req.User != "0" {
			fmt.Fprint(stdio.Stderr, "unexpected argv")
			return guest.ExitStatus{Code: 1}
		}
		fmt.Fprint(stdio.Stdout, `[{"pid":1,"ppid":0,"cmd":"/init"},{"pid":7,"ppid":1,"uid":1000,"cmd":"httpd -f"}]`)
		return guest.ExitStatus{}
	}
	m := newManager(t, w, t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := m.Processes(ctx, "", mc.ID)
	if err != nil || len(ps) != 2 || ps[1].Cmd != "httpd -f" || ps[1].UID != 1000 {
		t.Fatalf("processes = %+v, %v", ps, err)
	}
}
