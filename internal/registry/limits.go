package registry

import (
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Limits bound what one org, or one client, can make the server spend.
// Every field has a default (withDefaults); documented in docs/registry.md.
type Limits struct {
	// OrgStorage is an org's quota unless the org has its own (`ferry
	// registry org quota`): its distinct blobs and manifests, each at full
	// size, plus the bytes its open upload sessions hold. Default 100 GiB;
	// Unlimited for none.
	OrgStorage Size `yaml:"org_storage,omitempty"`
	// UploadSessions caps an org's open upload sessions (active within
	// UploadIdle). Default 64; -1 for no cap.
	UploadSessions int `yaml:"upload_sessions,omitempty"`
	// UploadIdle is how long a session without requests still counts as
	// open (default 10m).
	UploadIdle time.Duration `yaml:"upload_idle,omitempty"`
	// UploadMaxAge is how old a session gets before storage purges it
	// (default 24h); its bytes count against the quota until then.
	UploadMaxAge time.Duration `yaml:"upload_max_age,omitempty"`
	// BodyMinRate is the slowest a request body may arrive, on average,
	// once BodyGrace has passed, and a response be read (bytes per second;
	// default 1 KiB; Unlimited to turn off).
	BodyMinRate Size `yaml:"body_min_rate,omitempty"`
	// BodyGrace is how long a transfer may run before its rate counts
	// (default 10s).
	BodyGrace time.Duration `yaml:"body_grace,omitempty"`
	// BodyStall is the longest a transfer may make no progress at all
	// (default 60s).
	BodyStall time.Duration `yaml:"body_stall,omitempty"`
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout,omitempty"`
	// IdleTimeout bounds an idle keep-alive connection (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
}

// Size is a byte count, written as "100GiB", "512MB", "1024" or
// "unlimited" in the config.
type Size int64

// Unlimited is the Size that turns a limit off.
const Unlimited Size = -1

// ParseSize parses a Size.
func ParseSize(s string) (Size, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "none", "off":
		return Unlimited, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("size %q: want bytes like 100GiB, 512MB or unlimited: %w", s, errdefs.ErrInvalidArgument)
	}
	return Size(n), nil
}

// UnmarshalYAML reads a Size from a string or a number.
func (s *Size) UnmarshalYAML(unmarshal func(any) error) error {
	var raw string
	if err := unmarshal(&raw); err != nil {
		return err
	}
	v, err := ParseSize(raw)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String prints a Size as the config writes it.
func (s Size) String() string {
	switch {
	case s < 0:
		return "unlimited"
	case s == 0:
		return "0"
	}
	return humanize.IBytes(uint64(s))
}

// Set and Type make a Size a command-line flag value.
func (s *Size) Set(v string) error {
	p, err := ParseSize(v)
	if err == nil {
		*s = p
	}
	return err
}

// Type names the flag value's type in help.
func (s *Size) Type() string { return "size" }

func (l Limits) withDefaults() Limits {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	if l.OrgStorage == 0 {
		l.OrgStorage = 100 << 30
	}
	if l.UploadSessions == 0 {
		l.UploadSessions = 64
	}
	if l.BodyMinRate == 0 {
		l.BodyMinRate = 1 << 10
	}
	set(&l.UploadIdle, 10*time.Minute)
	set(&l.UploadMaxAge, 24*time.Hour)
	set(&l.BodyGrace, 10*time.Second)
	set(&l.BodyStall, time.Minute)
	set(&l.ReadHeaderTimeout, 10*time.Second)
	set(&l.IdleTimeout, 2*time.Minute)
	return l
}
