package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/network"
)

// runFlags are `ferry run`'s flags (Docker's names).
type runFlags struct {
	app, name, envFile, memory, user, workdir, entrypoint, hostname, vmm, restart, cgroupVersion string
	env, publish, dns                                                                            []string
	cpus                                                                                         float64
	rm, detach, interactive, tty, cold                                                           bool
	stopTimeout                                                                                  time.Duration
	net                                                                                          runNetFlags
	mounts                                                                                       runMountFlags
	health                                                                                       runHealthFlags
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [CMD...]",
		Short: "Run an image as a micro-VM (pulls it if needed) and stream its output",
		Long: `Run IMAGE as a new machine: pull it if it is not cached, create the
machine (read-only base rootfs + O(1) scratch disk + initramfs + TAP), boot it,
stream the entrypoint's output and exit with its exit status, like docker run.
-d prints the machine ID and returns at once. Ctrl-C stops the machine
(SIGTERM, then a kill after --stop-timeout). -it attaches this terminal to
the entrypoint through a pty in the guest (input, resize and Ctrl-C go to
it); -i alone streams stdin to it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := f.createRequest(args)
			if err != nil {
				return err
			}
			c, err := g.apiClient()
			if err != nil {
				return err
			}
			return runMachine(cmd.Context(), g, c, f, req)
		},
	}
	fl := cmd.Flags()
	f.add(fl)
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the machine ID")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open (with -t: an interactive terminal)")
	fl.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "on Ctrl-C, time between SIGTERM and the kill")
	return cmd
}

// add registers the flags run and create share.
func (f *runFlags) add(fl *pflag.FlagSet) {
	fl.SetInterspersed(false) // flags after IMAGE belong to CMD
	fl.StringVar(&f.app, "app", "default", "app the machine belongs to")
	fl.StringVar(&f.name, "name", "", "machine name (unique in the app; default: generated)")
	fl.BoolVar(&f.rm, "rm", false, "destroy the machine when it exits")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable (KEY=VALUE, or KEY to pass the local value)")
	fl.StringVar(&f.envFile, "env-file", "", "read KEY=VALUE lines from a file")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: [IP:]HOST:GUEST[/tcp|udp], or GUEST for a random host port")
	fl.Float64Var(&f.cpus, "cpus", 0, "virtual CPUs (default 1)")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory, e.g. 512m or 1g (a plain number is MB; default 256m)")
	fl.StringVarP(&f.user, "user", "u", "", "user to run as: name, uid, name:group or uid:gid")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory of the entrypoint")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fl.StringVar(&f.hostname, "hostname", "", "guest host name (default: the machine name)")
	fl.StringArrayVar(&f.dns, "dns", nil, "nameserver for the guest (repeatable)")
	f.net.add(fl)
	f.mounts.add(fl)
	f.health.add(fl)
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the entrypoint a terminal")
	fl.StringVar(&f.cgroupVersion, "cgroup-version", "", "cgroup layout in the guest: v2 (default), hybrid or v1 (for images that expect v1 hierarchies)")
	fl.StringVar(&f.vmm, "vmm", "", "VMM driver: qemu or firecracker (default: the daemon's)")
	fl.BoolVar(&f.cold, "cold", false, "boot the machine even when the daemon restores machines from warm-start templates")
	fl.StringVar(&f.restart, "restart", "", "restart policy: no, always, on-failure[:max-retries]")
}

// createRequest turns flags and arguments into the API request.
func (f *runFlags) createRequest(args []string) (types.CreateRequest, error) {
	cfg := types.Config{Image: args[0], Hostname: f.hostname, VMM: f.vmm, DNS: f.dns}
	if len(args) > 1 {
		cfg.Init.Cmd = args[1:]
	}
	if f.entrypoint != "" {
		cfg.Init.Entrypoint = []string{f.entrypoint}
		if cfg.Init.Cmd == nil {
			cfg.Init.Cmd = []string{}
		}
	}
	cfg.Init.User, cfg.Init.WorkingDir, cfg.Init.TTY = f.user, f.workdir, f.tty
	cfg.Init.CgroupVersion = f.cgroupVersion
	nets, err := f.net.endpoints()
	if err != nil {
		return types.CreateRequest{}, err
	}
	cfg.Networks, cfg.ExtraHosts = nets, f.net.addHosts
	if cfg.Mounts, err = f.mounts.config(); err != nil {
		return types.CreateRequest{}, err
	}
	env, err := parseEnv(f.envFile, f.env)
	if err != nil {
		return types.CreateRequest{}, err
	}
	cfg.Env = env
	if cfg.Healthcheck, err = f.health.config(); err != nil {
		return types.CreateRequest{}, err
	}
	if f.cpus < 0 {
		return types.CreateRequest{}, fmt.Errorf("--cpus %v: must be positive: %w", f.cpus, errdefs.ErrInvalidArgument)
	}
	cfg.Guest.CPUs, cfg.Guest.Cold = int(math.Ceil(f.cpus)), f.cold
	if f.memory != "" {
		if cfg.Guest.MemoryMB, err = parseMemoryMB(f.memory); err != nil {
			return types.CreateRequest{}, err
		}
	}
	for _, p := range f.publish {
		s, err := parsePublish(p)
		if err != nil {
			return types.CreateRequest{}, err
		}
		cfg.Services = append(cfg.Services, s)
	}
	if f.restart != "" {
		if cfg.Restart, err = types.ParseRestart(f.restart); err != nil {
			return types.CreateRequest{}, err
		}
		if f.rm && cfg.Restart.Policy != types.RestartNo {
			return types.CreateRequest{}, fmt.Errorf("--rm and --restart %s conflict: %w", f.restart, errdefs.ErrInvalidArgument)
		}
	}
	// A detached --rm machine destroys itself; a foreground one is
	// destroyed by this command once it has the exit status.
	cfg.AutoDestroy = f.rm && f.detach
	return types.CreateRequest{Name: f.name, Config: cfg}, nil
}

// runMachine creates and starts the machine, then (unless detached)
// streams its output and returns its exit status.
func runMachine(ctx context.Context, g *globals, c *api.Client, f runFlags, req types.CreateRequest) error {
	if f.interactive {
		return runInteractive(ctx, g, c, f, req)
	}
	if err := pullIfMissing(ctx, g, c, req.Config.Image); err != nil {
		return err
	}
	m, err := c.CreateMachine(ctx, f.app, req)
	if err != nil {
		return err
	}
	if f.detach {
		_, err := fmt.Fprintln(g.out, m.ID)
		return err
	}
	warnEmulated(g, m)
	logErr := c.MachineLogLines(ctx, f.app, m.ID, api.LogsOptions{Follow: true}, logLineWriter(g.out, g.err, false))
	if ctx.Err() != nil {
		// Ctrl-C: stop the machine (SIGTERM, then kill), keep its status.
		bg := context.Background()
		fmt.Fprintln(g.err, "ferry: stopping", m.ID)
		m, err = c.StopMachine(bg, f.app, m.ID, types.StopRequest{Timeout: f.stopTimeout.String()})
		return finishRun(bg, g, c, f, m, err)
	}
	if logErr != nil {
		fmt.Fprintln(g.err, "ferry: logs:", logErr)
	}
	for {
		// The daemon bounds one wait (60 s); a long-running entrypoint
		// whose output stream broke needs several.
		var w *types.Machine
		w, err = c.WaitMachine(ctx, f.app, m.ID, types.StateStopped, 0)
		if err == nil || !daemonSays(err, errdefs.ErrTimeout) || ctx.Err() != nil {
			m = w
			break
		}
	}
	return finishRun(context.Background(), g, c, f, m, err)
}

// pullIfMissing pulls ref with progress on stderr, as docker run does,
// when the daemon's cache does not have it (the daemon would pull it
// anyway, silently).
func pullIfMissing(ctx context.Context, g *globals, c *api.Client, ref string) error {
	if _, err := c.InspectImage(ctx, ref); err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	fmt.Fprintf(g.err, "Unable to find image '%s' locally\n", ref)
	auth, err := callerAuth(ref)
	if err != nil {
		return err
	}
	view := newProgressView(g.err, false, false)
	_, err = c.Pull(ctx, api.PullRequest{Ref: ref, Auth: auth}, view.update)
	view.finish(err == nil)
	return err
}

// finishRun destroys a --rm machine and turns its exit into ours.
func finishRun(ctx context.Context, g *globals, c *api.Client, f runFlags, m *types.Machine, err error) error {
	if err != nil {
		return err
	}
	if f.rm {
		if err := c.DestroyMachineWithVolumes(ctx, f.app, m.ID, true, true); err != nil {
			fmt.Fprintln(g.err, "ferry: remove", m.ID+":", err)
		}
	}
	if m.Error != "" { // init could not start the entrypoint (a mount, the user, ...)
		fmt.Fprintf(g.err, "ferry: machine %s: %s\n", m.ID, m.Error)
	}
	if m.LastExit == nil {
		return exitError{code: 125}
	}
	if m.LastExit.Unknown {
		fmt.Fprintf(g.err, "ferry: machine %s ended without an exit status (VMM crashed or was killed); see `ferry logs %s`\n", m.ID, m.ID)
	}
	if code := m.LastExit.ExitCode; code != 0 {
		return exitError{code: code}
	}
	return nil
}

// warnEmulated says once per process that the machine runs under TCG.
func warnEmulated(g *globals, m *types.Machine) {
	if m.Emulated {
		fmt.Fprintln(g.err, "ferry: no usable KVM here; the machine runs under emulation (QEMU TCG) and is much slower")
	}
}

// parseEnv merges an env file and -e flags (later wins).
func parseEnv(file string, flags []string) (map[string]string, error) {
	var lines []string
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			l := strings.TrimSpace(sc.Text())
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
	}
	lines = append(lines, flags...)
	if len(lines) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		if k == "" {
			return nil, fmt.Errorf("env %q: want KEY=VALUE: %w", l, errdefs.ErrInvalidArgument)
		}
		if !ok {
			var set bool
			if v, set = os.LookupEnv(k); !set {
				continue // Docker skips unset pass-through variables
			}
		}
		env[k] = v
	}
	return env, nil
}

// parseMemoryMB reads 512m, 1g, 1.5G, 524288k, 268435456b or a plain MB
// number.
func parseMemoryMB(s string) (int, error) {
	bad := fmt.Errorf("--memory %q: want a size like 512m or 1g: %w", s, errdefs.ErrInvalidArgument)
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "ib")
	t = strings.TrimSuffix(t, "b")
	mult := 1.0 // MB
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1.0/1024, t[:n-1]
		case 'm':
			t = t[:n-1]
		case 'g':
			mult, t = 1024, t[:n-1]
		case 't':
			mult, t = 1024*1024, t[:n-1]
		}
	}
	if strings.HasSuffix(strings.ToLower(s), "b") && !strings.ContainsAny(strings.ToLower(s), "kmgt") {
		mult = 1.0 / (1024 * 1024) // bytes
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 {
		return 0, bad
	}
	return int(math.Ceil(v * mult)), nil
}

// parsePublish reads Docker's -p (network.ParsePort) as a service.
func parsePublish(s string) (types.Service, error) {
	p, err := network.ParsePort(s)
	if err != nil {
		return types.Service{}, fmt.Errorf("-p: %w", err)
	}
	hp := types.Port{Port: int(p.HostPort)}
	if p.HostIP.IsValid() {
		hp.HostIP = p.HostIP.String()
	}
	return types.Service{Protocol: p.Protocol, InternalPort: int(p.GuestPort), Ports: []types.Port{hp}}, nil
}

// runInteractive is `run -i` / `run -it`: the machine is created with an
// attached entrypoint (the guest waits for this command before starting
// it) and this terminal becomes its stdio: with -t a raw terminal on a pty
// in the guest (Ctrl-C, resize and input go to the entrypoint), with -i
// alone pipes. It exits with the entrypoint's status. With -d it only
// prints the ID: `ferry attach` has a minute to connect.
func runInteractive(ctx context.Context, g *globals, c *api.Client, f runFlags, req types.CreateRequest) error {
	if err := pullIfMissing(ctx, g, c, req.Config.Image); err != nil {
		return err
	}
	req.Config.Init.Attach = true
	m, err := c.CreateMachine(ctx, f.app, req)
	if err != nil {
		return err
	}
	if f.detach {
		_, err := fmt.Fprintln(g.out, m.ID)
		return err
	}
	warnEmulated(g, m)
	code, err := execAttached(ctx, g, c, f.app, m.ID, types.ExecRequest{Entrypoint: true, TTY: f.tty}, f.interactive)
	bg := context.Background()
	if ctx.Err() != nil {
		// Ctrl-C without a terminal: stop the machine, as run without -i.
		fmt.Fprintln(g.err, "ferry: stopping", m.ID)
		m, err = c.StopMachine(bg, f.app, m.ID, types.StopRequest{Timeout: f.stopTimeout.String()})
		return finishRun(bg, g, c, f, m, err)
	}
	// The guest powers off once the entrypoint exited; --rm needs it
	// stopped. Its exit status is the one the attach reported.
	wctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	if err != nil {
		// The entrypoint could not start (not found: 127, …): the guest
		// powers off with that status.
		fmt.Fprintf(g.err, "ferry: attach to %s: %v\n", m.ID, err)
		if w, werr := c.WaitMachine(wctx, f.app, m.ID, types.StateStopped, 0); werr == nil && w.LastExit != nil {
			return finishRun(bg, g, c, f, w, nil)
		}
		if f.rm {
			_ = c.DestroyMachine(bg, f.app, m.ID, true)
		}
		return exitError{code: 125}
	}
	if _, err := c.WaitMachine(wctx, f.app, m.ID, types.StateStopped, 0); err != nil && f.rm {
		fmt.Fprintln(g.err, "ferry: wait for", m.ID, "to stop:", err)
	}
	if f.rm {
		if err := c.DestroyMachine(bg, f.app, m.ID, true); err != nil {
			fmt.Fprintln(g.err, "ferry: remove", m.ID+":", err)
		}
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}
