package cli

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
)

// runHealthFlags are run's and create's health-check flags (docker run's).
type runHealthFlags struct {
	cmd                                           string
	interval, timeout, startPeriod, startInterval time.Duration
	retries                                       int
	none                                          bool
}

func (h *runHealthFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&h.cmd, "health-cmd", "", "command to check health, run by /bin/sh -c in the guest (CMD-SHELL)")
	fl.DurationVar(&h.interval, "health-interval", 0, "time between checks, e.g. 30s (default: the image's, else 30s)")
	fl.DurationVar(&h.timeout, "health-timeout", 0, "time one check may take (default: the image's, else 30s)")
	fl.IntVar(&h.retries, "health-retries", 0, "consecutive failures that make the machine unhealthy (default: the image's, else 3)")
	fl.DurationVar(&h.startPeriod, "health-start-period", 0, "time to boot in which failures do not count (default 0)")
	fl.DurationVar(&h.startInterval, "health-start-interval", 0, "time between checks during the start period (default 5s)")
	fl.BoolVar(&h.none, "no-healthcheck", false, "disable any health check, the image's HEALTHCHECK too")
}

// config is the machine's health check: nil when no flag is set (the
// image's HEALTHCHECK applies), Test ["NONE"] for --no-healthcheck, an
// empty Test when only timings are set (they override the image's).
func (h *runHealthFlags) config() (*types.Healthcheck, error) {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"interval", h.interval}, {"timeout", h.timeout}, {"start-period", h.startPeriod}, {"start-interval", h.startInterval}} {
		if d.v < 0 {
			return nil, fmt.Errorf("--health-%s %s: must not be negative: %w", d.flag, d.v, errdefs.ErrInvalidArgument)
		}
	}
	if h.retries < 0 {
		return nil, fmt.Errorf("--health-retries %d: must not be negative: %w", h.retries, errdefs.ErrInvalidArgument)
	}
	set := h.cmd != "" || h.interval != 0 || h.timeout != 0 || h.startPeriod != 0 || h.startInterval != 0 || h.retries != 0
	if h.none {
		if set {
			return nil, fmt.Errorf("--no-healthcheck conflicts with --health-* options: %w", errdefs.ErrInvalidArgument)
		}
		return &types.Healthcheck{Test: []string{"NONE"}}, nil
	}
	if !set {
		return nil, nil
	}
	hc := &types.Healthcheck{Interval: h.interval, Timeout: h.timeout, StartPeriod: h.startPeriod,
		StartInterval: h.startInterval, Retries: h.retries}
	if h.cmd != "" {
		hc.Test = []string{"CMD-SHELL", h.cmd}
	}
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("health check: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return hc, nil
}
