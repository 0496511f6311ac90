package vmm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Drivers are the VMM drivers a daemon runs machines with, found by name.
// The driver that started a VMM is recorded in its pid file (and plan), so
// a re-adopted VMM is matched to its driver by that name, never by guessing
// from its command line.
type Drivers struct {
	def  string
	list []Driver
}

// NewDrivers returns the set; def is the name used when a machine names
// none ("" = the first available of list, so list the preferred first).
func NewDrivers(def string, list ...Driver) *Drivers {
	return &Drivers{def: def, list: list}
}

// Select returns the driver to start a machine with: name, else the
// default; it fails when that driver cannot run here.
func (ds *Drivers) Select(name string) (Driver, error) {
	if name == "" {
		name = ds.def
	}
	return Select(name, ds.list...)
}

// Get returns the driver called name, available or not (to talk to a VMM
// it started earlier). "" is the driver Select("") picks.
func (ds *Drivers) Get(name string) (Driver, error) {
	if name == "" {
		name = ds.def
	}
	if name == "" {
		return ds.Select("")
	}
	for _, d := range ds.list {
		if d.Name() == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("vmm %q: unknown driver (want qemu or firecracker): %w", name, errdefs.ErrInvalidArgument)
}

// AdoptMachine finds the live VMM of the machine whose directory is dir:
// by its pid file, or (a daemon killed between starting the VMM and
// writing that file left it running untracked) by its marker. An error
// wrapping errdefs.ErrNotFound means none runs.
func AdoptMachine(spec Spec) (*Process, error) {
	p, err := Adopt(spec.PIDFile())
	if errors.Is(err, errdefs.ErrNotFound) {
		p, err = AdoptByMarker(spec.Marker(), spec.Dir, spec.PIDFile())
	}
	if err != nil {
		return nil, err
	}
	// A VMM found by its marker, or recorded by an older ferry, has no
	// driver in its pid file: the record of its start names it.
	if p.Driver == "" {
		if r, err := ReadRecord(spec.Dir); err == nil && r.Plan != nil && r.Plan.Marker == p.Marker {
			p.Driver, p.Emulated = r.Plan.Driver, r.Plan.Emulated
		}
	}
	return p, nil
}

// RecordName is the file in a machine's directory that says what its last
// start ran: the Spec and the Plan actually executed (the accelerator a
// probe settled on, the driver, the argv). It is informational, for
// inspection and benchmarks, and rewritten at every start.
const RecordName = "vmm.json"

// Record is the content of RecordName.
type Record struct {
	Spec Spec  `json:"spec"`
	Plan *Plan `json:"plan"`
}

// WriteRecord writes spec and the plan p was started from to spec.Dir.
func WriteRecord(spec Spec, p *Process) error {
	if p.Plan == nil {
		return fmt.Errorf("vmm record: process %d has no plan: %w", p.Pid, errdefs.ErrInvalidArgument)
	}
	return WriteRecordOf(Record{Spec: spec, Plan: p.Plan})
}

// WriteRecordOf writes r to r.Spec.Dir.
func WriteRecordOf(r Record) error {
	return writeJSON(filepath.Join(r.Spec.Dir, RecordName), r)
}

// ReadRecord reads what a machine's last start ran.
func ReadRecord(dir string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, RecordName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("vmm record: %w: %w", err, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("vmm record %s: %w", dir, err)
	}
	return &r, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// Reap stops the VMMs recorded under machinesDir (one directory per
// machine, named by its ID) whose machine is not in keep, and returns
// their IDs. Only that directory's VMMs are touched: other data roots'
// machines are not ours.
func Reap(ctx context.Context, machinesDir string, keep []string) ([]string, error) {
	k := map[string]bool{}
	for _, id := range keep {
		k[id] = true
	}
	ents, err := os.ReadDir(machinesDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if k[e.Name()] || !e.IsDir() {
			continue
		}
		p, err := AdoptMachine(Spec{ID: e.Name(), Dir: filepath.Join(machinesDir, e.Name())})
		if err != nil {
			continue
		}
		_, _ = Stop(ctx, p, 0)
		out = append(out, e.Name())
	}
	return out, nil
}
