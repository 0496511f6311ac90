package dockerapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/logs"
	"github.com/ferryvm/ferry/internal/machine"
)

// logMachines is fakeMachines with a log of two lines, one per stream.
type logMachines struct {
	fakeMachines
	at time.Time
}

func (f *logMachines) Logs(_ context.Context, _, _ string, _ machine.LogOptions, fn func(logs.Entry) error) error {
	for _, e := range []logs.Entry{
		{Time: f.at, Stream: logs.Stdout, Data: []byte("out\n")},
		{Time: f.at.Add(time.Second), Stream: logs.Stderr, Data: []byte("err\n")},
	} {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// TestLogsStreams: docker logs frames each line on the stream the guest
// wrote it to (stdcopy, demultiplexed by moby's own reader), only the
// streams asked for, stamped with the stored time; a TTY's log is one raw
// stream.
func TestLogsStreams(t *testing.T) {
	at := time.Date(2026, 12, 4, 6, 30, 0, 123456789, time.UTC)
	get := func(tty bool, query string) (stdout, stderr string) {
		t.Helper()
		m := &types.Machine{ID: "0123456789abcd", Name: "web", State: types.StateStopped,
			Config: types.Config{Init: types.Init{TTY: tty}}}
		srv := httptest.NewServer(New(Config{Machines: &logMachines{fakeMachines{m: m}, at}}))
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/v1.47/containers/web/logs?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %s %s", query, resp.Status, b)
		}
		if tty {
			b, _ := io.ReadAll(resp.Body)
			return string(b), ""
		}
		var o, e bytes.Buffer
		if _, err := stdcopy.StdCopy(&o, &e, resp.Body); err != nil {
			t.Fatalf("%s: demultiplex: %v", query, err)
		}
		return o.String(), e.String()
	}
	for _, c := range []struct {
		tty            bool
		query          string
		stdout, stderr string
	}{
		{false, "stdout=1&stderr=1", "out\n", "err\n"},
		{false, "stdout=1", "out\n", ""},
		{false, "stderr=1", "", "err\n"},
		{false, "stdout=1&stderr=1&timestamps=1", "2026-12-04T06:30:00.123456789Z out\n", "2026-12-04T06:30:01.123456789Z err\n"},
		{true, "stdout=1&stderr=1", "out\nerr\n", ""},
	} {
		if o, e := get(c.tty, c.query); o != c.stdout || e != c.stderr {
			t.Errorf("tty %v, %s: stdout %q stderr %q, want %q %q", c.tty, c.query, o, e, c.stdout, c.stderr)
		}
	}
}
