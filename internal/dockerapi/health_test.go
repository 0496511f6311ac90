package dockerapi

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/ferryvm/ferry/internal/api/types"
)

func TestHealthcheckFromDocker(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *container.HealthConfig
		want *types.Healthcheck
	}{
		{"unset: the image's", nil, nil},
		{"CMD-SHELL (docker run --health-cmd)", &container.HealthConfig{Test: []string{"CMD-SHELL", "pg_isready"}, Interval: time.Second,
			Timeout: 2 * time.Second, StartPeriod: time.Minute, StartInterval: 100 * time.Millisecond, Retries: 4},
			&types.Healthcheck{Test: []string{"CMD-SHELL", "pg_isready"}, Interval: time.Second, Timeout: 2 * time.Second,
				StartPeriod: time.Minute, StartInterval: 100 * time.Millisecond, Retries: 4}},
		{"CMD", &container.HealthConfig{Test: []string{"CMD", "/check", "-v"}}, &types.Healthcheck{Test: []string{"CMD", "/check", "-v"}}},
		{"timings only: the image's test", &container.HealthConfig{Retries: 2}, &types.Healthcheck{Retries: 2}},
		{"NONE (--no-healthcheck)", &container.HealthConfig{Test: []string{"NONE"}}, &types.Healthcheck{Test: []string{"NONE"}}},
	} {
		req := container.CreateRequest{Config: &container.Config{Image: "busybox", Healthcheck: tc.in}}
		got, err := machineRequest("/c", req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got.Config.Healthcheck, tc.want) {
			t.Errorf("%s: healthcheck = %+v, want %+v", tc.name, got.Config.Healthcheck, tc.want)
		}
	}
	for _, bad := range []container.HealthConfig{{Test: []string{"SHELL", "x"}}, {Test: []string{"CMD"}}, {Test: []string{"CMD-SHELL", "a", "b"}},
		{Test: []string{"CMD", "x"}, Interval: time.Microsecond}, {Test: []string{"CMD", "x"}, Retries: -1}} {
		req := container.CreateRequest{Config: &container.Config{Image: "busybox", Healthcheck: &bad}}
		if _, err := machineRequest("/c", req); err == nil || !strings.HasPrefix(err.Error(), "healthcheck: ") {
			t.Errorf("%+v: err %v, want a 400 naming the healthcheck", bad, err)
		}
	}
}

func TestHealthInDockerViews(t *testing.T) {
	start := time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)
	m := &types.Machine{ID: "0123456789abcd", Name: "db", State: types.StateStarted, StartedAt: time.Now().Add(-5 * time.Second),
		Config: types.Config{Image: "busybox", Healthcheck: &types.Healthcheck{Test: []string{"CMD-SHELL", "pg_isready"}, Retries: 2}},
		Health: &types.Health{Status: types.HealthUnhealthy, FailingStreak: 2, Log: []types.HealthResult{
			{Start: start, End: start.Add(time.Second), ExitCode: 1, Output: "no response\n"}}}}
	r := inspect(m)
	b, err := json.Marshal(r.State.Health)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Status":"unhealthy","FailingStreak":2,"Log":[{"Start":"2026-12-03T17:00:00Z","End":"2026-12-03T17:00:01Z","ExitCode":1,"Output":"no response\n"}]}`
	if string(b) != want {
		t.Errorf("State.Health = %s\nwant %s", b, want)
	}
	if hc := r.Config.Healthcheck; hc == nil || strings.Join(hc.Test, " ") != "CMD-SHELL pg_isready" || hc.Retries != 2 {
		t.Errorf("Config.Healthcheck = %+v", hc)
	}
	for status, note := range map[string]string{types.HealthStarting: " (health: starting)", types.HealthHealthy: " (healthy)", types.HealthUnhealthy: " (unhealthy)"} {
		m.Health.Status = status
		if s := summary(m); s.Status != "Up 5 seconds"+note || s.Health.Status != container.HealthStatus(status) {
			t.Errorf("%s: summary status %q health %+v", status, s.Status, s.Health)
		}
	}
	m.Health = nil
	if s := summary(m); s.Status != "Up 5 seconds" || s.Health.Status != container.NoHealthcheck || inspect(m).State.Health != nil {
		t.Errorf("without a check: %q %+v", s.Status, s.Health)
	}
	e := types.Event{Type: "health_status", MachineID: m.ID, Status: types.HealthHealthy, Time: start}
	if a := dockerActions(e); len(a) != 1 || a[0] != events.ActionHealthStatusHealthy {
		t.Errorf("health event = %v, want %q", a, events.ActionHealthStatusHealthy)
	}
	f := filters{"event": {"health_status"}}
	if !eventMatches(f, events.Message{Type: events.ContainerEventType, Action: events.ActionHealthStatusHealthy}) {
		t.Error("event=health_status does not match health_status: healthy")
	}
}

func TestHealthFilter(t *testing.T) {
	healthy := &types.Machine{ID: "0123456789abcd", Name: "a", State: types.StateStarted, Health: &types.Health{Status: types.HealthHealthy}}
	plain := &types.Machine{ID: "1123456789abcd", Name: "b", State: types.StateStarted}
	for _, tc := range []struct {
		v    string
		want []bool
	}{{"healthy", []bool{true, false}}, {"none", []bool{false, true}}, {"unhealthy", []bool{false, false}}} {
		f := filters{"health": {tc.v}}
		if got := []bool{keep(f, healthy, container.StateRunning), keep(f, plain, container.StateRunning)}; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("health=%s kept %v, want %v", tc.v, got, tc.want)
		}
	}
	s := &Server{}
	rec := httptest.NewRecorder()
	err := s.listContainers(rec, httptest.NewRequest("GET", `/containers/json?filters={"health":{"sick":true}}`, nil))
	if err == nil || !strings.Contains(err.Error(), "invalid value for health (sick)") {
		t.Errorf("health=sick: %v", err)
	}
}
