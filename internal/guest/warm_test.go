package guest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func warmRunConfig() RunConfig {
	return RunConfig{
		Version: ConfigVersion,
		Image:   Image{Cmd: []string{"/bin/true"}},
		Root:    Root{Mode: RootOverlay, Device: "/dev/vda", Scratch: "/dev/vdb"},
	}
}

// Two warm configs never share entropy or a boot id; each validates.
func TestNewWarmConfigIsFresh(t *testing.T) {
	now := time.Now()
	a, err := NewWarmConfig(warmRunConfig(), now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewWarmConfig(warmRunConfig(), now)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Entropy, b.Entropy) || a.BootID == b.BootID {
		t.Errorf("two warm configs share entropy or boot id: %x %s / %x %s", a.Entropy, a.BootID, b.Entropy, b.BootID)
	}
	if a.TimeUnixNano != now.UnixNano() || len(a.Entropy) != WarmEntropyBytes {
		t.Errorf("warm config = %+v", a)
	}
	if a.BootID[14] != '4' {
		t.Errorf("boot id %s is not a version 4 UUID", a.BootID)
	}
}

func TestWarmConfigValidate(t *testing.T) {
	for name, mut := range map[string]func(*WarmConfig){
		"short entropy": func(w *WarmConfig) { w.Entropy = w.Entropy[:8] },
		"no time":       func(w *WarmConfig) { w.TimeUnixNano = 0 },
		"bad boot id":   func(w *WarmConfig) { w.BootID = "not-a-uuid" },
		"upper boot id": func(w *WarmConfig) { w.BootID = "ABCDEF01-2345-4678-89AB-CDEF01234567" },
		"bad config":    func(w *WarmConfig) { w.Config = []byte(`{"version":99}`) },
		"no config":     func(w *WarmConfig) { w.Config = nil },
		"empty disk":    func(w *WarmConfig) { w.DiskBytes = []int64{1 << 20, 0} },
		"negative disk": func(w *WarmConfig) { w.DiskBytes = []int64{-1} },
		"unknown field": func(w *WarmConfig) {
			w.Config = append(w.Config[:len(w.Config)-1:len(w.Config)-1], []byte(`,"from_the_future":1}`)...)
		},
	} {
		w, err := NewWarmConfig(warmRunConfig(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mut(w)
		if err := w.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", name, err)
		}
	}
}

type warmHandler struct {
	*fakeHandler
	got []*WarmConfig
}

func (h *warmHandler) Warm(w *WarmConfig, _ *RunConfig) error {
	if len(h.got) > 0 {
		return &Failure{Reason: ReasonInit, Message: "already configured"}
	}
	h.got = append(h.got, w)
	return nil
}

// The warm config crosses the control channel whole; a second one, or one
// to an init that takes none, is refused with the reason.
func TestWarmOverControl(t *testing.T) {
	ctx := context.Background()
	h := &warmHandler{fakeHandler: &fakeHandler{exited: make(chan struct{})}}
	c := startPair(t, h)
	w, err := NewWarmConfig(warmRunConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Warm(ctx, w); err != nil {
		t.Fatal(err)
	}
	if len(h.got) != 1 || h.got[0].BootID != w.BootID || !bytes.Equal(h.got[0].Entropy, w.Entropy) || h.got[0].TimeUnixNano != w.TimeUnixNano {
		t.Fatalf("init got %+v, want %+v", h.got, w)
	}
	if cfg, err := h.got[0].RunConfig(); err != nil || cfg.Image.Cmd[0] != "/bin/true" {
		t.Errorf("run config received: %+v, %v", cfg, err)
	}
	err = c.Warm(ctx, w)
	var re *RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "already configured") {
		t.Errorf("second warm config: %v", err)
	}
	short := *w
	short.Entropy = nil
	if err := c.Warm(ctx, &short); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("warm config without entropy: %v", err)
	}

	cold := startPair(t, &fakeHandler{exited: make(chan struct{})})
	if err := cold.Warm(ctx, w); err == nil || !strings.Contains(err.Error(), "takes no warm config") {
		t.Errorf("warm config to a cold init: %v", err)
	}
}

// A run config larger than a frame (up to MaxConfigSize) crosses in parts
// and arrives whole; parts beyond MaxConfigSize are refused by init.
func TestWarmLargeConfig(t *testing.T) {
	ctx := context.Background()
	h := &warmHandler{fakeHandler: &fakeHandler{exited: make(chan struct{})}}
	c := startPair(t, h)
	rc := warmRunConfig()
	rc.Image.Env = []string{"BIG=" + strings.Repeat("x", 600<<10)}
	w, err := NewWarmConfig(rc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Config) <= MaxPayload {
		t.Fatalf("test config is %d bytes: not larger than a frame", len(w.Config))
	}
	if err := c.Warm(ctx, w); err != nil {
		t.Fatal(err)
	}
	if len(h.got) != 1 || !bytes.Equal(h.got[0].Config, w.Config) {
		t.Fatalf("init got %d configs; the run config arrived changed", len(h.got))
	}
	got, err := h.got[0].RunConfig()
	if err != nil || len(got.Image.Env) != 1 || len(got.Image.Env[0]) != len(rc.Image.Env[0]) {
		t.Fatalf("run config received: %v", err)
	}

	c2 := startPair(t, &warmHandler{fakeHandler: &fakeHandler{exited: make(chan struct{})}})
	part := bytes.Repeat([]byte("y"), warmPartSize)
	var perr error
	for range MaxConfigSize/warmPartSize + 1 {
		if _, perr = c2.call(ctx, request{Op: "warm-part", Part: part}); perr != nil {
			break
		}
	}
	if perr == nil || !strings.Contains(perr.Error(), "exceeds") {
		t.Errorf("parts beyond MaxConfigSize: %v", perr)
	}
}

type rehearseHandler struct {
	*fakeHandler
	got  []*WarmConfig
	cfgs []*RunConfig
}

func (h *rehearseHandler) Rehearse(w *WarmConfig, cfg *RunConfig) error {
	h.got, h.cfgs = append(h.got, w), append(h.cfgs, cfg)
	return nil
}

// A rehearsal's warm config crosses the control channel as a warm one
// does (checked, its run config decoded once, in parts when large); a
// config Validate refuses never reaches init, and an init that does not
// rehearse says so.
func TestRehearseOverControl(t *testing.T) {
	ctx := context.Background()
	h := &rehearseHandler{fakeHandler: &fakeHandler{exited: make(chan struct{})}}
	c := startPair(t, h)
	rc := warmRunConfig()
	rc.Image.Env = []string{"BIG=" + strings.Repeat("x", 600<<10)}
	w, err := NewWarmConfig(rc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rehearse(ctx, w); err != nil {
		t.Fatal(err)
	}
	if len(h.got) != 1 || h.got[0].BootID != w.BootID || !bytes.Equal(h.got[0].Config, w.Config) {
		t.Fatalf("init got %d rehearsals; the config arrived changed", len(h.got))
	}
	if cfg := h.cfgs[0]; cfg == nil || cfg.Image.Cmd[0] != "/bin/true" || len(cfg.Image.Env[0]) != len(rc.Image.Env[0]) {
		t.Errorf("run config decoded for the rehearsal: %+v", cfg)
	}
	bad, err := NewWarmConfig(warmRunConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bad.Entropy = bad.Entropy[:8]
	if _, err := c.call(ctx, request{Op: "rehearse", Warm: bad}); err == nil || !strings.Contains(err.Error(), "entropy") {
		t.Errorf("a rehearsal with 8 bytes of entropy: %v", err)
	}
	if _, err := c.call(ctx, request{Op: "rehearse"}); err == nil || !strings.Contains(err.Error(), "no config") {
		t.Errorf("a rehearsal without a config: %v", err)
	}
	if len(h.got) != 1 {
		t.Errorf("init rehearsed %d times, want once", len(h.got))
	}
	plain := startPair(t, &fakeHandler{exited: make(chan struct{})})
	if err := plain.Rehearse(ctx, w); err == nil || !strings.Contains(err.Error(), "does not rehearse") {
		t.Errorf("rehearse to an init that does not: %v", err)
	}
}
