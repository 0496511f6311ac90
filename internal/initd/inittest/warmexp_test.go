package inittest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
	"github.com/ferryvm/ferry/internal/kernel"
	"github.com/ferryvm/ferry/internal/kernel/boottest"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

type qmpc struct {
	c  net.Conn
	br *bufio.Reader
}

func dialQMP(t *testing.T, path string) *qmpc {
	var c net.Conn
	var err error
	for i := 0; i < 500; i++ {
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	q := &qmpc{c: c, br: bufio.NewReader(c)}
	if _, err := q.br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	q.do(t, "qmp_capabilities", nil)
	return q
}

func (q *qmpc) do(t *testing.T, cmd string, args any) map[string]any {
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	b, _ := json.Marshal(m)
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := q.br.ReadString('\n')
		if err != nil {
			t.Fatalf("qmp %s: %v", cmd, err)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if _, ev := r["event"]; ev {
			continue
		}
		if e, ok := r["error"]; ok {
			t.Fatalf("qmp %s: %v", cmd, e)
		}
		return r
	}
}

// TestWarmExperiment is the measurement behind docs/warm-starts.md: a
// ferry-init guest running its entrypoint is paused, migrated to a file and
// restored twice by new QEMUs with other backing files (byte copies: the
// guest has them mounted), another control socket and, the second time, a
// grown scratch disk (block_resize after restore). The control channel must
// answer on the new socket; it logs the times and what the restored guests
// share (boot id, random bytes, wall clock).
func TestWarmExperiment(t *testing.T) {
	prereq.OptIn(t, "FERRY_WARM_EXPERIMENT", "the warm-start measurement of docs/warm-starts.md")
	e := Setup(t)
	dir := t.TempDir()
	base := e.Rootfs(t, nil)
	scratch := Scratch(t, 64)
	cfg := baseConfig("sleep", "600")
	raw, _ := cfg.Marshal()
	initrd := filepath.Join(dir, "initrd.cpio")
	ctx := context.Background()
	if err := kernel.WriteInitrd(ctx, initrd, e.Shared, map[string][]byte{guest.ConfigPath: raw}); err != nil {
		t.Fatal(err)
	}
	args := func(n int, base, scratch string, incoming string) []string {
		a, err := boottest.Config{Kernel: e.Kernel, Initrd: initrd, MemoryMB: 256, Machine: "microvm,x-option-roms=off,rtc=on,acpi=off"}.Args()
		if err != nil {
			t.Fatal(err)
		}
		ctl := fmt.Sprintf("%s/ctl%d.sock", dir, n)
		qmp := fmt.Sprintf("%s/qmp%d.sock", dir, n)
		a = append(a,
			"-drive", "id=d0,file="+base+",format=raw,if=none,readonly=on", "-device", "virtio-blk-device,drive=d0",
			"-drive", "id=d1,file="+scratch+",format=raw,if=none", "-device", "virtio-blk-device,drive=d1",
			"-device", "virtio-serial-device",
			"-chardev", "socket,id=ctl,path="+ctl+",server=on,wait=off",
			"-device", "virtserialport,chardev=ctl,name="+guest.SerialPortName,
			"-qmp", "unix:"+qmp+",server=on,wait=off")
		if incoming != "" {
			a = append(a, "-incoming", incoming)
		}
		return a
	}
	start := func(n int, a []string) *exec.Cmd {
		cmd := exec.Command("qemu-system-x86_64", a...)
		f, _ := os.Create(fmt.Sprintf("%s/console%d.log", dir, n))
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	run := func(c *guest.Client, sh string) string {
		var out bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ex, err := c.Run(cctx, guest.ExecRequest{Argv: []string{"sh", "-c", sh}}, guest.ExecIO{Stdout: &out, Stderr: &out})
		if err != nil || ex.Code != 0 {
			t.Fatalf("run %q: %v %+v %s", sh, err, ex, out.String())
		}
		return strings.TrimSpace(out.String())
	}
	dial := func(n int) *guest.Client {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		for {
			c, err := guest.Dial(cctx, fmt.Sprintf("%s/ctl%d.sock", dir, n), 0)
			if err == nil {
				st, err := c.Status(cctx)
				if err == nil && st.State == guest.StateRunning {
					return c
				}
				c.Close()
			}
			if cctx.Err() != nil {
				t.Fatal("dial", n, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	probe := "cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s; cat /sys/block/vdb/size"
	t0 := time.Now()
	q1cmd := start(1, args(1, base, scratch, ""))
	c1 := dial(1)
	cold := time.Since(t0)
	t.Logf("cold boot to running (control answers): %v", cold)
	t.Logf("cold probe: %s", run(c1, probe))
	c1.Close()
	q := dialQMP(t, dir+"/qmp1.sock")
	ts := time.Now()
	q.do(t, "stop", nil)
	state := dir + "/state"
	q.do(t, "migrate", map[string]any{"uri": "exec:cat > " + state})
	for {
		r := q.do(t, "query-migrate", nil)
		st := r["return"].(map[string]any)["status"]
		if st == "completed" {
			break
		}
		if st == "failed" {
			t.Fatalf("migrate failed %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	save := time.Since(ts)
	fi, _ := os.Stat(state)
	t.Logf("save (stop+migrate to file): %v, %d bytes", save, fi.Size())
	q1cmd.Process.Kill()
	q1cmd.Wait()
	for n := 2; n <= 3; n++ {
		// different backing files (byte copies: the guest has them mounted) and control socket
		b2 := fmt.Sprintf("%s/base%d.ext4", dir, n)
		s2 := fmt.Sprintf("%s/scratch%d.ext4", dir, n)
		copyFile(t, base, b2)
		copyFile(t, scratch, s2)
		if n == 3 {
			if err := os.Truncate(s2, 128<<20); err != nil {
				t.Fatal(err)
			} // a bigger scratch: does the guest see the new size?
		}
		tr := time.Now()
		start(n, args(n, b2, s2, "exec:cat "+state))
		q := dialQMP(t, fmt.Sprintf("%s/qmp%d.sock", dir, n))
		for {
			r := q.do(t, "query-status", nil)
			if s := r["return"].(map[string]any)["status"]; s == "paused" || s == "postmigrate" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		loaded := time.Since(tr)
		q.do(t, "cont", nil)
		running := time.Since(tr)
		if n == 3 {
			q.do(t, "block_resize", map[string]any{"device": "d1", "size": 128 << 20})
		}
		c := dial(n)
		answered := time.Since(tr)
		t.Logf("restore %d: loaded %v, running %v, control answers %v", n, loaded, running, answered)
		t.Logf("restore %d probe: %s", n, run(c, probe))
		c.Close()
	}
}

func copyFile(t *testing.T, src, dst string) {
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
}
