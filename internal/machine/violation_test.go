package machine

import (
	"errors"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/guest"
)

// TestGuestViolationEvent: a guest's protocol violation reaches event
// subscribers of its machine, with the reason.
func TestGuestViolationEvent(t *testing.T) {
	m := newManager(t, newWorld(), t.TempDir())
	mc, err := m.Create(ctx, "", types.CreateRequest{Config: types.Config{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := m.Subscribe("", mc.ID)
	defer cancel()
	m.GuestViolation(mc.ID, errors.Join(guest.ErrViolation, errors.New("stream 3: fd 1: 300000 bytes in flight")))
	m.GuestViolation("no-such-machine", guest.ErrViolation) // ignored
	select {
	case e := <-events:
		if e.Type != "guest_violation" || e.MachineID != mc.ID || e.Status == "" {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}
