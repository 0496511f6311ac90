package guest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// Warm starts (docs/warm-starts.md): a machine restored from a template
// finds a ferry-init that was saved waiting, before it read any run config;
// the host then sends a WarmConfig over the control channel. Everything a
// template's restores would otherwise share is in it: fresh entropy for
// the kernel's pool, the wall-clock time, a boot id.

// WarmCmdline is on the kernel command line of a template guest: its
// ferry-init waits for a WarmConfig instead of reading ConfigPath.
const WarmCmdline = "ferry.warm=1"

// WarmEntropyBytes is how many fresh host bytes a WarmConfig carries (and
// at least what init accepts): 512 bits, credited in full, initialise the
// guest's random pool at once however little it had when saved.
const WarmEntropyBytes = 64

// WarmConfig is what a restored machine receives before it runs anything.
type WarmConfig struct {
	// Config is the machine's run config, encoded as a cold boot reads it
	// from the initramfs, and decoded by init the same way (ParseConfig:
	// unknown fields are errors).
	Config json.RawMessage `json:"config,omitempty"`
	// Entropy is fresh random bytes from the host, added to the guest's
	// pool (credited) before anything else runs.
	Entropy []byte `json:"entropy"`
	// TimeUnixNano is the host's wall clock when it sent the config: the
	// restored guest's clock is the template's until set.
	TimeUnixNano int64 `json:"time_unix_nano"`
	// BootID replaces the template's /proc/sys/kernel/random/boot_id for
	// the machine's processes (a UUID, lower-case, with dashes).
	BootID string `json:"boot_id"`
	// DiskBytes is the size of each of the machine's disks as the host
	// sees them, in drive order (virtio order: vda, vdb, …). The restored
	// kernel has the sizes of the template's placeholders (QEMU's
	// block_resize updates a writable drive's, never a read-only one's):
	// init re-probes a disk whose size it has wrong, and only drops the
	// cached blocks of the others. Without it init re-probes every disk.
	DiskBytes []int64 `json:"disk_bytes,omitempty"`
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NewWarmConfig is cfg with fresh entropy, the time now and a new boot id.
func NewWarmConfig(cfg RunConfig, now time.Time) (*WarmConfig, error) {
	raw, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	w := &WarmConfig{Config: raw, Entropy: make([]byte, WarmEntropyBytes), TimeUnixNano: now.UnixNano()}
	if _, err := rand.Read(w.Entropy); err != nil {
		return nil, fmt.Errorf("warm config: entropy: %w", err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("warm config: boot id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	w.BootID = fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16])
	return w, w.Validate()
}

// Validate says what makes w unusable. A restored guest refuses a config
// without enough entropy rather than run with its template's random state.
func (w *WarmConfig) Validate() error {
	if err := w.ValidateState(); err != nil {
		return err
	}
	_, err := w.RunConfig()
	return err
}

// ValidateState is Validate without decoding the run config (for a
// caller that decodes it anyway).
func (w *WarmConfig) ValidateState() error {
	switch {
	case len(w.Entropy) < WarmEntropyBytes:
		return fmt.Errorf("warm config: %d bytes of entropy, at least %d are needed: %w", len(w.Entropy), WarmEntropyBytes, ErrInvalidConfig)
	case w.TimeUnixNano <= 0:
		return fmt.Errorf("warm config: no time: %w", ErrInvalidConfig)
	case !uuidRE.MatchString(w.BootID):
		return fmt.Errorf("warm config: boot id %q is not a lower-case UUID: %w", w.BootID, ErrInvalidConfig)
	}
	for i, n := range w.DiskBytes {
		if n <= 0 {
			return fmt.Errorf("warm config: disk %d has size %d: %w", i, n, ErrInvalidConfig)
		}
	}
	return nil
}

// RunConfig decodes and validates w's run config.
func (w *WarmConfig) RunConfig() (*RunConfig, error) {
	if len(w.Config) == 0 {
		return nil, fmt.Errorf("warm config: no run config: %w", ErrInvalidConfig)
	}
	return ParseConfig(w.Config)
}

// StateWaiting is the state of a ferry-init booted with WarmCmdline until
// it has received its WarmConfig: the point where a template is saved.
const StateWaiting = "waiting"

// WarmHandler is a Handler that can be configured by the host (ferry-init
// waiting in a restored template).
type WarmHandler interface {
	// Warm hands w, checked, and its run config, decoded, to init; it
	// fails when init is not waiting for one.
	Warm(w *WarmConfig, cfg *RunConfig) error
}

func serveWarm(w *WarmConfig, parts []byte, h Handler) *RemoteError {
	wh, ok := h.(WarmHandler)
	if !ok {
		return &RemoteError{Message: "warm: this init takes no warm config"}
	}
	return serveWarmConfig("warm", w, parts, wh.Warm)
}

// serveWarmConfig checks a warm (or rehearse) request's config, with its
// run config in parts when they came first, decodes the run config once
// and hands both to take: init takes them as they are.
func serveWarmConfig(op string, w *WarmConfig, parts []byte, take func(*WarmConfig, *RunConfig) error) *RemoteError {
	if w == nil {
		return &RemoteError{Reason: ReasonConfig, Message: op + ": no config"}
	}
	if len(parts) > 0 {
		if len(w.Config) > 0 {
			return &RemoteError{Reason: ReasonConfig, Message: op + ": a run config both in parts and in the request"}
		}
		c := *w
		c.Config = parts
		w = &c
	}
	if err := w.ValidateState(); err != nil {
		return &RemoteError{Reason: ReasonConfig, Message: err.Error()}
	}
	cfg, err := w.RunConfig()
	if err != nil {
		return &RemoteError{Reason: ReasonConfig, Message: err.Error()}
	}
	if err := take(w, cfg); err != nil {
		return remoteError(err)
	}
	return nil
}

// warmPartSize is how much of a run config one warm-part request carries:
// base64 in JSON, it stays well inside a frame (MaxPayload).
const warmPartSize = 32 << 10

// addWarmPart appends b to the run config a warm request will carry; the
// whole stays within MaxConfigSize.
func (m *mux) addWarmPart(b []byte) *RemoteError {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(b) == 0 || len(b) > warmPartSize {
		return &RemoteError{Reason: ReasonConfig, Message: fmt.Sprintf("warm: a part of %d bytes (1 to %d)", len(b), warmPartSize)}
	}
	if len(m.warmParts)+len(b) > MaxConfigSize {
		m.warmParts = nil
		return &RemoteError{Reason: ReasonConfig, Message: fmt.Sprintf("warm: run config exceeds %d bytes", MaxConfigSize)}
	}
	m.warmParts = append(m.warmParts, b...)
	return nil
}

// takeWarmParts returns and forgets the parts received so far.
func (m *mux) takeWarmParts() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.warmParts
	m.warmParts = nil
	return p
}

// Warm sends a restored machine's WarmConfig; init answers once it has
// taken it (the boot then goes on as a cold boot's after reading its
// config). A run config too large for one frame (up to MaxConfigSize)
// goes first in warm-part requests, in order, on this connection.
func (c *Client) Warm(ctx context.Context, w *WarmConfig) error {
	return c.sendWarm(ctx, "warm", w)
}

func (c *Client) sendWarm(ctx context.Context, op string, w *WarmConfig) error {
	if err := w.Validate(); err != nil {
		return err
	}
	req := request{Op: op, Warm: w}
	if b, err := json.Marshal(req); err != nil {
		return fmt.Errorf("%s config: %w", op, err)
	} else if len(b) > MaxPayload {
		for rest := []byte(w.Config); len(rest) > 0; {
			n := min(len(rest), warmPartSize)
			if _, err := c.call(ctx, request{Op: "warm-part", Part: rest[:n]}); err != nil {
				return err
			}
			rest = rest[n:]
		}
		short := *w
		short.Config = nil
		req.Warm = &short
	}
	_, err := c.call(ctx, req)
	return err
}

// TemplateMAC is the MAC of a template's i-th NIC. A restored guest's
// virtio-net driver keeps the MAC it read when the template booted, so a
// warm init gives the NIC that has TemplateMAC(i) the run config's i-th
// interface's MAC before it configures the network (and QEMU follows:
// virtio-net's ctrl_mac_addr). Locally administered, never a machine's.
func TemplateMAC(i int) string { return fmt.Sprintf("02:fe:77:00:00:%02x", i&0xff) }

// RehearseHelperArg re-executes ferry-init (BuildHelper) as a process that
// exits at once: a rehearsal's fork and exec.
const RehearseHelperArg = "ferry-rehearse"

// Rehearser is a Handler that can rehearse a start while it waits for a
// warm config (a spare, docs/warm-starts.md): given a warm config of a
// machine that does not exist (the spare's own shape: its placeholder
// disks, NICs on addresses of no network), it runs the guest paths a start
// takes with it, so a VMM that restored the guest has translated them
// (TCG) before a machine claims it, and undoes what they did. w and cfg
// were checked and decoded as a warm config's are.
type Rehearser interface {
	Rehearse(w *WarmConfig, cfg *RunConfig) error
}

func serveRehearse(w *WarmConfig, parts []byte, h Handler) *RemoteError {
	rh, ok := h.(Rehearser)
	if !ok {
		return &RemoteError{Message: "rehearse: this init does not rehearse"}
	}
	return serveWarmConfig("rehearse", w, parts, rh.Rehearse)
}

// Rehearse asks init, waiting for a warm config, to rehearse a start with
// w (sent as Warm sends one); it returns once init has.
func (c *Client) Rehearse(ctx context.Context, w *WarmConfig) error {
	return c.sendWarm(ctx, "rehearse", w)
}
