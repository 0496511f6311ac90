package qemu

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/vmm"
)

// A resizable drive (a volume) gets a QMP monitor, passed listening like
// every socket, and no image locking; a plan without one has neither.
func TestPlanResizableDrive(t *testing.T) {
	spec := testSpec(t)
	p, err := sandboxed(WithAccel(AccelTCG)).Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(p.Args, "-mon") || strings.Contains(strings.Join(p.Args, " "), "locking") {
		t.Errorf("plan without resizable drives has a monitor or locking option: %v", p.Args)
	}
	spec.Drives = append(spec.Drives, vmm.Drive{ID: "vol0", Path: "/var/lib/ferry/volumes/vol_1/data", Resizable: true})
	p, err = sandboxed(WithAccel(AccelTCG)).Plan(spec)
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(p.Args, " ")
	if !strings.Contains(args, "-mon chardev=qmp,mode=control") || !strings.Contains(args, "id=vol0,file=/dev/fdset/") || !strings.Contains(args, "file.locking=off") {
		t.Errorf("plan with a resizable drive: %s", args)
	}
	if !slices.ContainsFunc(p.Extra, func(x vmm.ExtraFile) bool { return x.Name == "qmp" && x.Listen && x.Path == QMPPath(spec.Dir) }) {
		t.Errorf("the QMP socket is not passed listening: %+v", p.Extra)
	}
}

// ResizeDrive speaks QMP: greeting, capabilities, block_resize (events in
// between are skipped), and reports QEMU's error.
func TestResizeDrive(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := bufio.NewReader(c)
			c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					break
				}
				got <- strings.TrimSpace(line)
				if strings.Contains(line, "block_resize") && strings.Contains(line, `"nope"`) {
					c.Write([]byte(`{"error": {"class": "GenericError", "desc": "Device 'nope' not found"}}` + "\n"))
					continue
				}
				c.Write([]byte(`{"event": "SOMETHING"}` + "\n" + `{"return": {}}` + "\n"))
			}
			c.Close()
		}
	}()
	if err := ResizeDrive(context.Background(), dir, "vol0", 2<<30); err != nil {
		t.Fatal(err)
	}
	if a, b := <-got, <-got; !strings.Contains(a, "qmp_capabilities") || !strings.Contains(b, `"device":"vol0"`) || !strings.Contains(b, `"size":2147483648`) {
		t.Errorf("QMP commands %s, %s", a, b)
	}
	if err := ResizeDrive(context.Background(), dir, "nope", 1); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("resize of a missing drive: %v", err)
	}
}
