package machine

import (
	"fmt"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/vmm"
)

// clkTck is USER_HZ, 100 on every Linux ferry runs on.
const clkTck = 100

// Stats samples the VMM's CPU over interval and reads its resident memory.
func (m *Manager) Stats(app, ref string, interval time.Duration) (*types.Stats, error) {
	mc, err := m.Get(app, ref)
	if err != nil {
		return nil, err
	}
	if mc.State != types.StateStarted || mc.PID == 0 {
		return nil, fmt.Errorf("machine %s is %s, not started: %w", mc.ID, mc.State, errdefs.ErrConflict)
	}
	t0, err := vmm.CPUTicks(mc.PID)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	time.Sleep(interval)
	t1, err := vmm.CPUTicks(mc.PID)
	if err != nil {
		return nil, err
	}
	rss, err := vmm.RSSBytes(mc.PID)
	if err != nil {
		return nil, err
	}
	el := time.Since(start).Seconds()
	return &types.Stats{ID: mc.ID, Name: mc.Name, PID: mc.PID, CPUSeconds: float64(t1) / clkTck,
		CPUPercent: 100 * float64(t1-t0) / clkTck / el, MemoryRSS: rss, MemoryMB: mc.Config.Guest.MemoryMB}, nil
}
