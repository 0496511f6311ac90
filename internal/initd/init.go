package initd

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferryvm/ferry/internal/guest"
)

// Init is one run of ferry-init.
type Init struct {
	start  time.Time
	log    *Logger
	mnt    Mounter
	reaper *Reaper
	sup    *supervisor

	cfg     *guest.RunConfig
	root    *rootHandles
	volumes []*os.File // O_PATH of each writable block volume's mount
	cred    Cred
	env     []string
	workdir string
	path    string

	console io.Writer // the attached entrypoint's output copy; nil: /dev/console

	cg          *appCgroup
	exitCh      <-chan unix.WaitStatus
	oomBefore   int64
	cgOOMBefore int64
}

// Main runs init and never returns: it ends by powering the VM off.
func Main() {
	if len(os.Args) > 1 && os.Args[1] == guest.BuildHelperArg && os.Getpid() != 1 {
		os.Exit(BuildMain(os.Args[2:])) // re-executed by a builder VM's exec: see build.go
	}
	if len(os.Args) > 1 && os.Args[1] == guest.ArchiveHelperArg && os.Getpid() != 1 {
		os.Exit(ArchiveMain(os.Args[2:])) // re-executed for docker cp: see archive.go
	}
	if len(os.Args) > 1 && os.Args[1] == guest.ProcessesHelperArg && os.Getpid() != 1 {
		os.Exit(ProcessesMain()) // re-executed for docker top: see processes.go
	}
	if len(os.Args) > 1 && os.Args[1] == guest.GrowHelperArg && os.Getpid() != 1 {
		os.Exit(GrowMain(os.Args[2:])) // re-executed to grow a volume online: see grow.go
	}
	if len(os.Args) > 1 && os.Args[1] == guest.RehearseHelperArg && os.Getpid() != 1 {
		os.Exit(0) // a rehearsal's exec: see rehearse.go
	}
	start := time.Now()
	debug.SetGCPercent(400) // a short-lived, small heap: collect rarely
	in := &Init{start: start, log: NewLogger(start), mnt: sysMounter{}}
	in.sup = newSupervisor(in)
	in.reaper = NewReaper()
	in.run()
}

func (in *Init) run() {
	defer func() {
		if r := recover(); r != nil {
			in.fail(&guest.Failure{Reason: guest.ReasonInit, Message: fmt.Sprintf("panic: %v", r)})
		}
	}()
	in.log.Noticef("start")
	var modulesMS float64
	for _, st := range Steps {
		t := time.Now()
		if err := st.Run(in); err != nil {
			in.fail(asFailure(st, err))
			return
		}
		ms := float64(time.Since(t).Microseconds()) / 1000
		if st.Name == "modules" {
			modulesMS = ms
		}
		in.log.Infof("step %s done in %.3fms", st.Name, ms)
	}
	// The bench (bench/init) parses this line.
	in.log.Noticef("ready in %.3fms (modules %.3fms): exec %s (pid %d)", in.sup.initMS, modulesMS, in.path, in.sup.pid())
	in.supervise()
}

// supervise forwards signals to the entrypoint until it exits, then shuts
// down.
func (in *Init) supervise() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGTSTP)
	pid := in.sup.pid()
	for {
		select {
		case s := <-sigs:
			if sig, ok := s.(syscall.Signal); ok {
				_ = unix.Kill(pid, sig)
			}
		case ws := <-in.exitCh:
			ex := in.entryStatus(ws)
			in.sup.exited(ex)
			in.shutdown(ex)
			return
		}
	}
}

// oomKilled reports whether an OOM kill happened since the entrypoint
// started: in the app cgroup when there is one, else anywhere in the VM.
func (in *Init) oomKilled() bool {
	if in.cg != nil && in.cgOOMBefore >= 0 {
		return in.cg.oomKills() > in.cgOOMBefore
	}
	return in.oomBefore >= 0 && oomKills() > in.oomBefore
}

// fail reports a boot failure and powers off.
func (in *Init) fail(f *guest.Failure) {
	in.log.Must(fmt.Sprintf("error: %s failed: %s (%s)", f.Step, f.Message, f.Reason))
	ex := guest.ExitStatus{Code: failureCode(f), Failure: f}
	in.sup.refuseAttach(f)
	in.sup.exited(ex)
	in.shutdown(ex)
}

// shutdown reports ex, stops everything and powers off.
func (in *Init) shutdown(ex guest.ExitStatus) {
	in.log.Must(guest.ConsoleExitLine(ex)[len("ferry-init: "):])
	power := guest.Power{}
	if in.cfg != nil {
		power = in.cfg.Power
	}
	stop := time.Duration(power.StopGraceMS) * time.Millisecond
	if power.StopGraceMS == 0 {
		stop = 500 * time.Millisecond
	}
	in.killAll(stop)
	grace := time.Duration(power.ExitGraceMS) * time.Millisecond
	if power.ExitGraceMS == 0 {
		grace = time.Second
	}
	in.sup.awaitAck(grace)
	unix.Sync()
	in.remountVolumesReadOnly()
	if in.root != nil {
		in.root.remountReadOnly(in.log)
	}
	unix.Sync()
	powerOff(power.Method, in.log)
}

// killAll stops every process but init: SIGTERM, then SIGKILL after grace.
func (in *Init) killAll(grace time.Duration) {
	if !in.reaper.Children() {
		return
	}
	_ = unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(grace)
	for in.reaper.Children() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if in.reaper.Children() {
		_ = unix.Kill(-1, unix.SIGKILL)
		for i := 0; i < 200 && in.reaper.Children(); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// powerOff ends the VM. It never returns; if reboot(2) fails init sleeps
// rather than exit (PID 1 exiting panics the kernel).
func powerOff(method string, log *Logger) {
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	switch method {
	case guest.PowerPoweroff:
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	case guest.PowerHalt:
		cmd = unix.LINUX_REBOOT_CMD_HALT
	}
	err := unix.Reboot(cmd)
	log.Must(fmt.Sprintf("error: reboot: %v", err))
	for {
		time.Sleep(time.Hour)
	}
}
