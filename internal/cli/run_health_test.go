package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/machine"
)

// parseRunFlags parses run's and create's shared flags from args.
func parseRunFlags(t *testing.T, args ...string) (types.CreateRequest, error) {
	t.Helper()
	var f runFlags
	fl := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f.add(fl)
	if err := fl.Parse(append(args, "busybox")); err != nil {
		t.Fatal(err)
	}
	return f.createRequest(fl.Args())
}

func TestRunHealthFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want *types.Healthcheck
	}{
		{"none set: the image's", nil, nil},
		{"cmd is CMD-SHELL", []string{"--health-cmd", "curl -f localhost || exit 1", "--health-interval", "2s", "--health-timeout", "3s",
			"--health-retries", "4", "--health-start-period", "1m", "--health-start-interval", "500ms"},
			&types.Healthcheck{Test: []string{"CMD-SHELL", "curl -f localhost || exit 1"}, Interval: 2 * time.Second, Timeout: 3 * time.Second,
				Retries: 4, StartPeriod: time.Minute, StartInterval: 500 * time.Millisecond}},
		{"timings alone keep the image's test", []string{"--health-interval", "5s"}, &types.Healthcheck{Interval: 5 * time.Second}},
		{"no-healthcheck", []string{"--no-healthcheck"}, &types.Healthcheck{Test: []string{"NONE"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseRunFlags(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(req.Config.Healthcheck, tc.want) {
				t.Fatalf("healthcheck = %+v, want %+v", req.Config.Healthcheck, tc.want)
			}
			if err := machine.ValidateConfig(&req.Config); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-interval", "-1s"}, "--health-interval -1s: must not be negative"},
		{[]string{"--health-retries", "-2"}, "--health-retries -2: must not be negative"},
		{[]string{"--health-cmd", "true", "--health-timeout", "1ns"}, "timeout: 1ns is below 1ms"},
	} {
		if _, err := parseRunFlags(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want it to say %q", tc.args, err, tc.want)
		}
	}
}

func TestHealthStatusColumn(t *testing.T) {
	now := time.Now()
	up := func(h *types.Health) *types.Machine {
		return &types.Machine{State: types.StateStarted, StartedAt: now.Add(-5 * time.Second), Health: h}
	}
	for _, tc := range []struct {
		m    *types.Machine
		want string
	}{
		{up(nil), "Up 5 seconds"},
		{up(&types.Health{Status: types.HealthStarting}), "Up 5 seconds (health: starting)"},
		{up(&types.Health{Status: types.HealthHealthy}), "Up 5 seconds (healthy)"},
		{up(&types.Health{Status: types.HealthUnhealthy, FailingStreak: 3}), "Up 5 seconds (unhealthy)"},
	} {
		if got := machineStatus(tc.m, now); got != tc.want {
			t.Errorf("status of %+v = %q, want %q", tc.m.Health, got, tc.want)
		}
	}
}

func TestPsHealthFilter(t *testing.T) {
	ms := map[string]*types.Machine{
		"none":      {ID: "none"},
		"starting":  {ID: "starting", Health: &types.Health{Status: types.HealthStarting}},
		"healthy":   {ID: "healthy", Health: &types.Health{Status: types.HealthHealthy}},
		"unhealthy": {ID: "unhealthy", Health: &types.Health{Status: types.HealthUnhealthy}},
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{nil, []string{"healthy", "none", "starting", "unhealthy"}},
		{[]string{"health=healthy"}, []string{"healthy"}},
		{[]string{"health=none"}, []string{"none"}},
		{[]string{"health=starting", "health=unhealthy"}, []string{"starting", "unhealthy"}},
	} {
		keep, err := parsePsFilters(tc.filters)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, id := range []string{"healthy", "none", "starting", "unhealthy"} {
			if keep(ms[id]) {
				got = append(got, id)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v kept %v, want %v", tc.filters, got, tc.want)
		}
	}
	for _, f := range []string{"health", "health=sick", "label=a=b"} {
		if _, err := parsePsFilters([]string{f}); err == nil {
			t.Errorf("--filter %s accepted", f)
		}
	}
}

func TestWaitHealthyDone(t *testing.T) {
	hc := &types.Healthcheck{Test: []string{"CMD-SHELL", "true"}}
	log := []types.HealthResult{{ExitCode: 1, Output: "connection refused\n"}}
	for _, tc := range []struct {
		name string
		m    types.Machine
		done bool
		err  string
	}{
		{"starting VM", types.Machine{State: types.StateStarting, Config: types.Config{Healthcheck: hc}}, false, ""},
		{"checker not up yet", types.Machine{State: types.StateStarted, Config: types.Config{Healthcheck: hc}}, false, ""},
		{"health starting", types.Machine{State: types.StateStarted, Health: &types.Health{Status: types.HealthStarting}}, false, ""},
		{"healthy", types.Machine{State: types.StateStarted, Health: &types.Health{Status: types.HealthHealthy}}, true, ""},
		{"image's check", types.Machine{State: types.StateStarted, ImageConfig: types.ImageConfig{Healthcheck: hc}}, false, ""},
		{"unhealthy", types.Machine{State: types.StateStarted, Health: &types.Health{Status: types.HealthUnhealthy, Log: log}}, false,
			`m is unhealthy (last check: exit 1: "connection refused")`},
		{"no check", types.Machine{State: types.StateStarted}, false, "m has no health check"},
		{"disabled", types.Machine{State: types.StateStarted, Config: types.Config{Healthcheck: &types.Healthcheck{Test: []string{"NONE"}}},
			ImageConfig: types.ImageConfig{Healthcheck: hc}}, false, "m has no health check"},
		{"stopped", types.Machine{State: types.StateStopped}, false, "m is stopped, not running"},
	} {
		done, err := healthWaitDone("m", &tc.m)
		if done != tc.done || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: done %v, err %v; want %v, %q", tc.name, done, err, tc.done, tc.err)
		}
	}
}

func TestEventLine(t *testing.T) {
	at := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	e := types.Event{Type: "health_status", MachineID: "abc", App: "default", State: types.StateStarted, Status: "healthy", Time: at}
	if got, want := eventLine(e), "2026-12-03T17:00:00Z machine health_status: healthy abc (app=default, state=started)"; got != want {
		t.Errorf("eventLine = %q, want %q", got, want)
	}
	e = types.Event{Type: "exit", MachineID: "abc", App: "a", State: types.StateStopped, Exit: &types.Exit{ExitCode: 3}, Time: at}
	if got, want := eventLine(e), "2026-12-03T17:00:00Z machine exit abc (app=a, state=stopped, exitCode=3)"; got != want {
		t.Errorf("eventLine = %q, want %q", got, want)
	}
}
