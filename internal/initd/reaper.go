package initd

import (
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaper is PID 1's child handling: it reaps every child, including
// orphans re-parented to init, and hands the status of the processes it
// started to whoever waits for them. Nothing else in init may call wait.
type Reaper struct {
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	sigs    chan os.Signal
}

var (
	reaperOnce sync.Once
	reaper     *Reaper
)

// NewReaper returns the process's reaper, starting it (on SIGCHLD) on first
// use. There is one per process: wait(-1) collects every child, so two
// reapers would steal each other's statuses.
func NewReaper() *Reaper {
	reaperOnce.Do(func() {
		reaper = &Reaper{waiters: map[int]chan unix.WaitStatus{}, sigs: make(chan os.Signal, 8)}
		signal.Notify(reaper.sigs, syscall.SIGCHLD)
		go reaper.loop()
	})
	return reaper
}

func (r *Reaper) loop() {
	for range r.sigs {
		r.reapAll()
	}
}

// reapAll collects every exited child.
func (r *Reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		r.mu.Lock()
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid > 0 {
			if ch, ok := r.waiters[pid]; ok {
				ch <- ws
				delete(r.waiters, pid)
			}
		}
		r.mu.Unlock()
		if pid <= 0 || err != nil {
			return
		}
	}
}

// Start runs fork (which must return the child's pid) with the reaper
// locked, so the child's status cannot be reaped before it is registered.
func (r *Reaper) Start(fork func() (int, error)) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan unix.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}

// Children reports whether init has any child left, reaping (and
// dispatching) any that exited meanwhile.
func (r *Reaper) Children() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil: // ECHILD: none left
			return false
		case pid == 0: // children, all still running
			return true
		}
		if ch, ok := r.waiters[pid]; ok {
			ch <- ws
			delete(r.waiters, pid)
		}
	}
}
