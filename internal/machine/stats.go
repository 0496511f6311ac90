package machine

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
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
	t0, err := cpuTicks(mc.PID)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	time.Sleep(interval)
	t1, err := cpuTicks(mc.PID)
	if err != nil {
		return nil, err
	}
	rss, err := rssBytes(mc.PID)
	if err != nil {
		return nil, err
	}
	el := time.Since(start).Seconds()
	return &types.Stats{ID: mc.ID, Name: mc.Name, PID: mc.PID, CPUSeconds: float64(t1) / clkTck,
		CPUPercent: 100 * float64(t1-t0) / clkTck / el, MemoryRSS: rss, MemoryMB: mc.Config.Guest.MemoryMB}, nil
}

// cpuTicks returns utime+stime of pid (fields 14 and 15 of /proc/PID/stat).
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("vmm process %d: %w", pid, errdefs.ErrNotFound)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad cpu times", pid)
	}
	return u + k, nil
}

// rssBytes reads the resident set of pid from /proc/PID/statm.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, fmt.Errorf("vmm process %d: %w", pid, errdefs.ErrNotFound)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/statm: short", pid)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, err
	}
	return pages * int64(os.Getpagesize()), nil
}
