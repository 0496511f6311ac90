package inittest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/guest"
)

// TestWarmRestore saves a ferry-init booted with guest.WarmCmdline while
// it waits for its config (placeholder disks, nothing mounted), restores
// it twice with real disks of its own, and hands each its warm config over
// the control channel: each runs its entrypoint on its own root (larger
// than the template's placeholder disks: init re-probes them), and the
// two read different random bytes, have the boot id and the clock (an hour
// ahead, to be seen) they were given, not the template's.
func TestWarmRestore(t *testing.T) {
	e := Setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	placeholder := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		// Smaller than the real disks: the restored kernel must re-probe
		// them to mount them (a read-only drive cannot be resized by QEMU).
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := baseConfig("sleep", "600")
	qmpArgs := func(name string) (string, []string) {
		p := filepath.Join(dir, name)
		return p, []string{"-qmp", "unix:" + p + ",server=on,wait=off"}
	}

	// The template.
	tq, targs := qmpArgs("tq.sock")
	tb := e.Start(t, cfg, Disks{Base: placeholder("base0"), Scratch: placeholder("scratch0")}, Options{Append: guest.WarmCmdline, Extra: targs})
	tc, err := tb.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for {
		st, err := tc.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == guest.StateWaiting {
			break
		}
		if st.State != guest.StateBooting {
			res, _ := tb.Wait()
			t.Fatalf("template init is %s, not waiting\n%s", st.State, res.Console)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tc.Close()
	state := filepath.Join(dir, "state")
	q := dialQMP(t, tq)
	q.do(t, "stop", nil)
	q.do(t, "migrate", map[string]any{"uri": "exec:cat > " + state})
	for {
		r := q.do(t, "query-migrate", nil)
		st := r["return"].(map[string]any)["status"]
		if st == "completed" {
			break
		}
		if st == "failed" {
			t.Fatalf("migrate: %v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	q.do(t, "quit", nil)
	tb.Wait()

	type seen struct{ marker, bootID, rnd string }
	var got []seen
	var sent []*guest.WarmConfig
	for i := range 2 {
		marker := fmt.Sprintf("machine-%d", i)
		base := e.Rootfs(t, map[string]string{"/marker": marker})
		rq, rargs := qmpArgs(fmt.Sprintf("rq%d.sock", i))
		launched := time.Now()
		scratch := Scratch(t, 64)
		b := e.Start(t, cfg, Disks{Base: base, Scratch: scratch}, Options{Append: guest.WarmCmdline, Extra: append(rargs, "-incoming", "exec:cat "+state)})
		q := dialQMP(t, rq)
		for {
			r := q.do(t, "query-status", nil)
			if s := r["return"].(map[string]any)["status"]; s != "inmigrate" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		q.do(t, "cont", nil)
		c, err := b.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w, err := guest.NewWarmConfig(*cfg, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// The real sizes: the scratch disk (larger than its placeholder,
		// not resized here) is re-probed; the base is kept if it fits.
		for _, p := range []string{base, scratch} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			w.DiskBytes = append(w.DiskBytes, fi.Size())
		}
		if err := c.Warm(ctx, w); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, w)
		for {
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.State == guest.StateRunning {
				t.Logf("machine %d: QEMU launched → entrypoint running in %v", i, time.Since(launched).Round(time.Millisecond))
				break
			}
			if st.State != guest.StateBooting {
				c.Close()
				res, _ := b.Wait()
				t.Fatalf("restored init is %s (%+v)\n%s", st.State, st.Exit, res.Console)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var out, errOut bytes.Buffer // one writer each: Run copies stdout and stderr concurrently
		// The first exec right after a restore is slow (TCG translates
		// everything anew): its exit once overtook its output, reported
		// with none (initd's drain: TestExecOutputOvertaken). No retry.
		ex, err := c.Run(ctx, guest.ExecRequest{Argv: []string{"sh", "-c",
			"cat /marker; echo; cat /proc/sys/kernel/random/boot_id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s; cat /sys/block/vda/size /sys/block/vdb/size"}},
			guest.ExecIO{Stdout: &out, Stderr: &errOut})
		c.Close()
		if err != nil || ex.Code != 0 {
			t.Fatalf("probe: %v %+v: %s%s", err, ex, out.String(), errOut.String())
		}
		f := strings.Fields(out.String())
		if len(f) != 6 {
			t.Fatalf("probe printed %q", out.String())
		}
		at, _ := strconv.ParseInt(f[3], 10, 64)
		if ahead := at - time.Now().Unix(); ahead < 3500 || ahead > 3700 {
			t.Errorf("machine %d: guest clock is %ds ahead of the host, want about 3600 (the time sent)", i, ahead)
		}
		if f[4] != "65536" || f[5] != "131072" {
			t.Errorf("machine %d sees disks of %s and %s sectors, want its own 65536 and 131072 (not the template's 32768)", i, f[4], f[5])
		}
		got = append(got, seen{f[0], f[1], f[2]})
		t.Logf("machine %d: %s", i, strings.Join(f, " "))
	}
	for i, s := range got {
		if s.marker != fmt.Sprintf("machine-%d", i) {
			t.Errorf("machine %d runs on root %q, not its own", i, s.marker)
		}
		if s.bootID != sent[i].BootID {
			t.Errorf("machine %d: boot id %s, sent %s", i, s.bootID, sent[i].BootID)
		}
	}
	// (Under inittest the guest also has virtio-rng and TCG's RDRAND, which
	// may make the bytes differ even without init's reseed; the boot id
	// and the clock show that the warm config was applied.)
	if got[0].rnd == got[1].rnd {
		t.Errorf("two machines restored from one template read the same random bytes %s", got[0].rnd)
	}
}
