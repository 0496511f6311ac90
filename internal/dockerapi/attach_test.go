package dockerapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// fakeMachines answers Get, Subscribe and Exec; anything else panics
// (the embedded nil interface).
type fakeMachines struct {
	Machines
	m       *types.Machine
	execErr error
}

func (f *fakeMachines) Get(_, ref string) (*types.Machine, error) {
	if ref != f.m.ID && ref != f.m.Name {
		return nil, fmt.Errorf("machine %s: %w", ref, errdefs.ErrNotFound)
	}
	return f.m, nil
}

func (f *fakeMachines) Subscribe(_, _ string) (<-chan types.Event, func()) {
	return make(chan types.Event), func() {}
}

func (f *fakeMachines) Exec(_ context.Context, _, _ string, _ types.ExecRequest, _ guest.ExecIO) (int, error) {
	return 0, f.execErr
}

// A failed attach to the entrypoint reaches the client as a stderr frame
// saying why, not a silently closed stream.
func TestAttachEntrypointFailureReachesClient(t *testing.T) {
	m := &types.Machine{ID: "0123456789abcd", Name: "web", State: types.StateStarted,
		Config: types.Config{Init: types.Init{Attach: true}}}
	srv := httptest.NewServer(New(Config{Machines: &fakeMachines{m: m, execErr: errors.New("guest refused the attach")}}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1.47/containers/web/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("attach = %d, want 101", resp.StatusCode)
	}
	var stderr strings.Builder
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			break
		}
		b := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		if hdr[0] == streamStderr {
			stderr.Write(b)
		}
	}
	if !strings.Contains(stderr.String(), "guest refused the attach") || !strings.Contains(stderr.String(), containerID(m.ID)) {
		t.Fatalf("stderr frames = %q, want the attach failure", stderr.String())
	}
}

// docker top on a stopped container: Docker's ContainerTop refuses it with
// errNotRunning (409, "container <full id> is not running"), and so does
// ferry, word for word.
func TestTopStoppedContainer(t *testing.T) {
	m := &types.Machine{ID: "0123456789abcd", Name: "web", State: types.StateStopped}
	srv := httptest.NewServer(New(Config{Machines: &fakeMachines{m: m}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1.47/containers/web/top")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	want := "container " + containerID(m.ID) + " is not running"
	if resp.StatusCode != http.StatusConflict || body.Message != want {
		t.Fatalf("top of a stopped container = %d %q, want 409 %q", resp.StatusCode, body.Message, want)
	}
}
