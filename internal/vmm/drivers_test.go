package vmm

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// TestAdoptKnowsItsDriver: the driver and accelerator of a started VMM are
// in its pid file, so a re-adopted VMM is matched to its driver by name.
func TestAdoptKnowsItsDriver(t *testing.T) {
	p := fakePlan(t, "sleep")
	p.Driver, p.Accel, p.Emulated = "firecracker", "kvm", false
	proc := startPlan(t, p)
	if proc.Plan != p || proc.Driver != "firecracker" {
		t.Fatalf("started process plan %v driver %q", proc.Plan, proc.Driver)
	}
	adopted, err := Adopt(p.PIDFile)
	if err != nil {
		t.Fatal(err)
	}
	if adopted.Driver != "firecracker" || adopted.Emulated || adopted.Plan != nil {
		t.Errorf("adopted driver %q emulated %v plan %v", adopted.Driver, adopted.Emulated, adopted.Plan)
	}
}

// TestRecordIsWhatRan: WriteRecord keeps the plan the process was started
// from, and AdoptMachine takes the driver from it when the pid file has
// none (a VMM found by its marker, or an older ferry's pid file).
func TestRecordIsWhatRan(t *testing.T) {
	p := fakePlan(t, "sleep")
	p.Accel, p.Emulated = "tcg", true
	dir := filepath.Dir(p.PIDFile)
	proc := startPlan(t, p)
	spec := Spec{ID: "test", Dir: dir}
	if err := WriteRecord(spec, proc); err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecord(dir)
	if err != nil || rec.Plan.Accel != "tcg" || !rec.Plan.Emulated || rec.Plan.Driver != "test" {
		t.Fatalf("record %+v, %v", rec, err)
	}
	// An older pid file: no driver recorded.
	old := &Process{Pid: proc.Pid, StartTime: proc.StartTime, Args: proc.Args, Marker: proc.Marker, PIDFile: proc.PIDFile}
	if err := old.writePIDFile(); err != nil {
		t.Fatal(err)
	}
	adopted, err := AdoptMachine(Spec{ID: "test", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if adopted.Driver != "test" || !adopted.Emulated {
		t.Errorf("adopted from an old pid file: driver %q emulated %v; want the record's", adopted.Driver, adopted.Emulated)
	}
	if _, err := AdoptMachine(Spec{ID: "none", Dir: t.TempDir()}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no VMM: %v", err)
	}
}

type namedDriver struct {
	name string
	err  error
}

func (d namedDriver) Name() string             { return d.name }
func (d namedDriver) Available() error         { return d.err }
func (d namedDriver) Plan(Spec) (*Plan, error) { return &Plan{Driver: d.name}, nil }
func (d namedDriver) Start(context.Context, Spec) (*Process, error) {
	return nil, errors.ErrUnsupported
}
func (d namedDriver) DialControl(context.Context, Spec) (net.Conn, error) {
	return nil, errors.ErrUnsupported
}

func TestDriversByName(t *testing.T) {
	fc := namedDriver{"firecracker", errors.New("no kvm")}
	q := namedDriver{name: "qemu"}
	ds := NewDrivers("", fc, q)
	if d, err := ds.Select(""); err != nil || d.Name() != "qemu" {
		t.Errorf("Select default = %v, %v; want the first available", d, err)
	}
	if _, err := ds.Select("firecracker"); err == nil {
		t.Error("Select of an unavailable driver succeeded")
	}
	if d, err := ds.Get("firecracker"); err != nil || d.Name() != "firecracker" {
		t.Errorf("Get firecracker = %v, %v; want it, available or not", d, err)
	}
	if _, err := ds.Get("xen"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Get xen: %v", err)
	}
	if d, err := NewDrivers("qemu", fc, q).Get(""); err != nil || d.Name() != "qemu" {
		t.Errorf("Get default = %v, %v", d, err)
	}
	if d, err := ds.Get(""); err != nil || d.Name() != "qemu" {
		t.Errorf("Get with no default = %v, %v; want the first available, as a start picks", d, err)
	}
}

func TestReapOnlyStrays(t *testing.T) {
	machines := t.TempDir()
	start := func(id string) *Process {
		p := fakePlan(t, "sleep")
		p.PIDFile = filepath.Join(machines, id, "vmm.pid")
		if err := os.MkdirAll(filepath.Dir(p.PIDFile), 0o700); err != nil {
			t.Fatal(err)
		}
		return startPlan(t, p)
	}
	keep, stray := start("keep"), start("stray")
	got, err := Reap(context.Background(), machines, []string{"keep"})
	if err != nil || len(got) != 1 || got[0] != "stray" {
		t.Fatalf("Reap = %v, %v", got, err)
	}
	<-stray.Done()
	select {
	case <-keep.Done():
		t.Error("Reap stopped a machine it was told to keep")
	default:
	}
}
