package vmm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func validSpec() Spec {
	return Spec{
		ID: "m1", Dir: "/tmp/m1", Kernel: "/k", VCPUs: 1, MemoryMiB: 128,
		Drives:     []Drive{{ID: "root", Path: "/d"}},
		NICs:       []NIC{{ID: "eth0", Tap: "ft-1", MAC: "02:fe:00:00:00:01"}},
		Control:    Control{Socket: "/tmp/m1/control.sock"},
		ConsoleLog: "/tmp/m1/console.log",
	}
}

func TestSpecValidate(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(*Spec)
		want string
	}{
		{"bad id", func(s *Spec) { s.ID = "a b" }, "id"},
		{"id too long for firecracker", func(s *Spec) { s.ID = strings.Repeat("a", 59) }, "id"},
		{"relative dir", func(s *Spec) { s.Dir = "m1" }, "dir"},
		{"no kernel", func(s *Spec) { s.Kernel = "" }, "kernel"},
		{"zero vcpus", func(s *Spec) { s.VCPUs = 0 }, "vcpus"},
		{"tiny memory", func(s *Spec) { s.MemoryMiB = 8 }, "memory"},
		{"dup drive", func(s *Spec) { s.Drives = append(s.Drives, s.Drives[0]) }, "drive"},
		{"bad mac", func(s *Spec) { s.NICs[0].MAC = "02:fe" }, "mac"},
		{"nic without tap", func(s *Spec) { s.NICs[0].Tap = "" }, "tap"},
		{"long socket", func(s *Spec) { s.Control.Socket = "/" + strings.Repeat("s", 120) }, "socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.mut(&s)
			err := s.Validate()
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want invalid argument about %s", err, tc.want)
			}
		})
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	s := validSpec()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the spec:\n%s\n%s", b, b2)
	}
}

type fakeDriver struct {
	name string
	err  error
}

func (f fakeDriver) Name() string     { return f.name }
func (f fakeDriver) Available() error { return f.err }
func (fakeDriver) Plan(Spec) (*Plan, error) {
	return nil, nil
}
func (fakeDriver) Start(_ ctxT, _ Spec) (*Process, error) { return nil, nil }
func (fakeDriver) DialControl(_ ctxT, _ Spec) (connT, error) {
	return nil, nil
}

func TestSelect(t *testing.T) {
	fc := fakeDriver{"firecracker", errors.New("no /dev/kvm")}
	q := fakeDriver{"qemu", nil}
	if d, err := Select("", fc, q); err != nil || d.Name() != "qemu" {
		t.Errorf("auto picked %v, %v; want qemu when firecracker is unavailable", d, err)
	}
	if d, err := Select("", fakeDriver{"firecracker", nil}, q); err != nil || d.Name() != "firecracker" {
		t.Errorf("auto picked %v, %v; want firecracker when available", d, err)
	}
	if _, err := Select("firecracker", fc, q); err == nil || !strings.Contains(err.Error(), "no /dev/kvm") {
		t.Errorf("explicit unavailable driver: %v", err)
	}
	if _, err := Select("xen", fc, q); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown driver: %v", err)
	}
	if _, err := Select("", fc); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("none available: %v", err)
	}
}

func TestPlanCommandQuotes(t *testing.T) {
	p := &Plan{Args: []string{"qemu", "-append", "console=ttyS0 quiet", "it's"}}
	if got, want := p.Command(), `qemu -append 'console=ttyS0 quiet' 'it'\''s'`; got != want {
		t.Errorf("Command() = %s, want %s", got, want)
	}
}
