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

// NewReaper starts reaping (on SIGCHLD).
func NewReaper() *Reaper {
	r := &Reaper{waiters: map[int]chan unix.WaitStatus{}, sigs: make(chan os.Signal, 8)}
	signal.Notify(r.sigs, syscall.SIGCHLD)
	go r.loop()
	return r
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

// Children reports whether init has any child left.
func (r *Reaper) Children() bool {
	r.reapAll()
	var ws unix.WaitStatus
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WNOWAIT|unix.WEXITED, nil)
	return err != unix.ECHILD
}
