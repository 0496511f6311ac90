package dockerfile

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// proxyArgs reach RUN's environment from --build-arg without an ARG (and
// stay out of the history), as in BuildKit.
var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// dispatcher is the state of one stage while its instructions are walked.
type dispatcher struct {
	s     *Stage
	lex   *shell.Lex
	cfg   v1.Config
	state *Env // image env + ARG values: what words expand against
	args  []instructions.KeyValuePairOptional
	// cmdSet: CMD was given in this stage (ENTRYPOINT then keeps it).
	cmdSet bool
	steps  []Step
}

// Dispatch walks the stage's instructions on top of base, the config of
// the stage's base image (zero for scratch; the base stage's final config
// for FROM <stage>). triggers are the base image's ONBUILD instructions,
// which run first (a base stage's are not inherited, as in BuildKit).
// baseArgs are the ARGs the base stage declared, which stay in scope.
func (s *Stage) Dispatch(base v1.Config, triggers []string, baseArgs []instructions.KeyValuePairOptional) ([]Step, []instructions.KeyValuePairOptional, error) {
	d := &dispatcher{s: s, lex: shell.NewLex(s.file.Escape), cfg: cloneConfig(base), args: append([]instructions.KeyValuePairOptional(nil), baseArgs...)}
	d.cfg.OnBuild = nil
	d.state = NewEnv(d.cfg.Env)
	for _, a := range d.args {
		if a.Value != nil {
			d.state.Set(a.Key, *a.Value)
		}
	}
	for _, t := range triggers {
		res, err := parser.Parse(strings.NewReader(t))
		if err != nil {
			return nil, nil, bad(nil, "ONBUILD trigger %q of %s: %v", t, s.Base, err)
		}
		if len(res.AST.Children) != 1 {
			return nil, nil, bad(nil, "ONBUILD trigger %q of %s: want one instruction", t, s.Base)
		}
		c, err := instructions.ParseCommand(res.AST.Children[0])
		if err != nil {
			return nil, nil, bad(nil, "ONBUILD trigger %q of %s: %v", t, s.Base, err)
		}
		if err := d.dispatch(c, true); err != nil {
			return nil, nil, err
		}
	}
	for _, c := range s.commands {
		if err := d.dispatch(c, false); err != nil {
			return nil, nil, err
		}
	}
	return d.steps, d.args, nil
}

func (d *dispatcher) dispatch(c instructions.Command, onbuild bool) error {
	loc := c.Location()
	if onbuild {
		loc = []parser.Range{{Start: parser.Position{Line: d.s.Line}}}
	}
	expand := func(word string) (string, error) {
		v, _, err := d.lex.ProcessWord(word, d.state)
		return v, err
	}
	if _, isArg := c.(*instructions.ArgCommand); !isArg {
		if ex, ok := c.(instructions.SupportsSingleWordExpansion); ok {
			if err := ex.Expand(expand); err != nil {
				return at(loc, err)
			}
		}
	}
	if ex, ok := c.(instructions.SupportsSingleWordExpansionRaw); ok {
		raw := shell.NewLex('\\')
		raw.SkipProcessQuotes = true
		if err := ex.ExpandRaw(func(w string) (string, error) {
			v, _, err := raw.ProcessWord(w, d.state)
			return v, err
		}); err != nil {
			return at(loc, err)
		}
	}
	st := Step{Kind: Meta, Line: line(loc), OnBuild: onbuild, Text: d.text(c)}
	var err error
	switch c := c.(type) {
	case *instructions.EnvCommand:
		h := "ENV"
		for _, kv := range c.Env {
			d.state.Set(kv.Key, kv.Value)
			d.cfg.Env = addEnv(d.cfg.Env, kv.Key, kv.Value)
			h += " " + kv.String()
		}
		st.History = h
	case *instructions.ArgCommand:
		st.History, err = d.arg(c)
	case *instructions.RunCommand:
		err = d.run(c, &st)
	case *instructions.CopyCommand:
		err = d.copy(&st, copyArgs{sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod,
			link: c.Link, parents: c.Parents, exclude: c.ExcludePatterns})
	case *instructions.AddCommand:
		unpack := true
		if c.Unpack != nil {
			unpack = *c.Unpack
		}
		if c.Checksum != "" {
			err = fmt.Errorf("ADD --checksum needs an HTTP or git source, which ferry build does not fetch")
			break
		}
		err = d.copy(&st, copyArgs{add: true, sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod,
			link: c.Link, exclude: c.ExcludePatterns, unpack: unpack})
	case *instructions.WorkdirCommand:
		d.cfg.WorkingDir = normalizeWorkdir(d.cfg.WorkingDir, c.Path)
		st.History = "WORKDIR " + d.cfg.WorkingDir
	case *instructions.UserCommand:
		d.cfg.User = c.User
		st.History = "USER " + c.User
	case *instructions.ExposeCommand:
		st.History, err = d.expose(c)
	case *instructions.EntrypointCommand:
		args := d.withShell(c.ShellDependantCmdLine)
		d.cfg.Entrypoint = args
		if !d.cmdSet {
			d.cfg.Cmd = nil
		}
		st.History = fmt.Sprintf("ENTRYPOINT %q", args)
	case *instructions.CmdCommand:
		args := d.withShell(c.ShellDependantCmdLine)
		d.cfg.Cmd = args
		d.cfg.ArgsEscaped = true
		d.cmdSet = true
		st.History = fmt.Sprintf("CMD %q", args)
	case *instructions.LabelCommand:
		if d.cfg.Labels == nil {
			d.cfg.Labels = map[string]string{}
		}
		h := "LABEL"
		for _, kv := range c.Labels {
			d.cfg.Labels[kv.Key] = kv.Value
			h += " " + kv.String()
		}
		st.History = h
	case *instructions.VolumeCommand:
		if d.cfg.Volumes == nil {
			d.cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v == "" {
				err = fmt.Errorf("VOLUME specified can not be an empty string")
				break
			}
			d.cfg.Volumes[v] = struct{}{}
		}
		st.History = fmt.Sprintf("VOLUME %v", c.Volumes)
	case *instructions.StopSignalCommand:
		if !validSignal(c.Signal) {
			err = fmt.Errorf("invalid signal: %s", c.Signal)
			break
		}
		d.cfg.StopSignal = c.Signal
		st.History = "STOPSIGNAL " + c.Signal
	case *instructions.HealthCheckCommand:
		h := c.Health
		d.cfg.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, Retries: h.Retries}
		st.History = fmt.Sprintf("HEALTHCHECK %+v", *d.cfg.Healthcheck)
	case *instructions.ShellCommand:
		d.cfg.Shell = append([]string(nil), c.Shell...)
		st.History = fmt.Sprintf("SHELL %v", c.Shell)
	case *instructions.OnbuildCommand:
		d.cfg.OnBuild = append(d.cfg.OnBuild, c.Expression)
	case *instructions.MaintainerCommand:
		st.History = "MAINTAINER " + c.Maintainer
	default:
		err = fmt.Errorf("instruction %s is not supported", c.Name())
	}
	if err != nil {
		return at(loc, err)
	}
	st.Config = cloneConfig(d.cfg)
	d.steps = append(d.steps, st)
	return nil
}

// text is the instruction with its variables expanded, for progress lines.
func (d *dispatcher) text(c instructions.Command) string {
	s := fmt.Sprint(c)
	if v, _, err := d.lex.ProcessWord(s, d.state); err == nil {
		s = v
	}
	name, rest, _ := strings.Cut(s, " ")
	return strings.ToUpper(name) + " " + rest
}

func (d *dispatcher) arg(c *instructions.ArgCommand) (string, error) {
	var parts []string
	for _, kv := range c.Args {
		bv, hasValue := d.s.file.opts.BuildArgs[kv.Key]
		switch {
		case hasValue:
			kv.Value = &bv
		case kv.Value != nil:
			v, _, err := d.lex.ProcessWord(*kv.Value, d.state)
			if err != nil {
				return "", err
			}
			kv.Value = &v
		default:
			if v, ok := d.s.file.Global.Get(kv.Key); ok {
				kv.Value = &v
			}
		}
		if kv.Value != nil {
			d.state.Set(kv.Key, *kv.Value)
		}
		d.args = append(d.args, kv)
		p := kv.Key
		if kv.Value != nil {
			p += "=" + *kv.Value
		}
		parts = append(parts, p)
	}
	return "ARG " + strings.Join(parts, " "), nil
}

// withShell wraps a shell-form command line in the stage's shell.
func (d *dispatcher) withShell(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string(nil), c.CmdLine...)
	}
	return append(d.shell(), strings.Join(c.CmdLine, " "))
}

func (d *dispatcher) shell() []string {
	if len(d.cfg.Shell) > 0 {
		return append([]string(nil), d.cfg.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

func (d *dispatcher) run(c *instructions.RunCommand, st *Step) error {
	st.Kind = Run
	r := &RunStep{Env: d.state.List(), User: d.cfg.User, Workdir: d.cfg.WorkingDir, Network: instructions.GetNetwork(c)}
	if r.Workdir == "" {
		r.Workdir = "/"
	}
	for _, k := range proxyArgs {
		if v, ok := d.s.file.opts.BuildArgs[k]; ok && !d.state.has(k) {
			r.Env = append(r.Env, k+"="+v)
		}
	}
	if len(instructions.GetSecurity(c)) > 0 && instructions.GetSecurity(c) != instructions.SecuritySandbox {
		return fmt.Errorf("RUN --security=%s is not supported: every RUN already runs in its own micro-VM as root", instructions.GetSecurity(c))
	}
	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				// A script with its own interpreter: mount it and run it.
				r.Files = []InlineFile{{Name: c.Files[0].Name, Data: data}}
				args = []string{path.Join("/dev/pipes", c.Files[0].Name)}
				r.Argv = args
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	if r.Argv == nil {
		r.Argv = d.withShell(instructions.ShellDependantCmdLine{CmdLine: args, PrependShell: c.PrependShell})
	}
	for _, m := range instructions.GetMounts(c) {
		bm, err := d.mount(m)
		if err != nil {
			return err
		}
		r.Mounts = append(r.Mounts, bm)
	}
	st.Run = r
	st.History = "RUN " + d.runString(r.Argv) + " # buildkit"
	return nil
}

// runString is BuildKit's history form: "|N K=V ... argv".
func (d *dispatcher) runString(argv []string) string {
	var env []string
	idx := map[string]int{}
	for _, a := range d.args {
		v, ok := d.state.Get(a.Key)
		if !ok {
			v = a.ValueString()
		}
		if i, ok := idx[a.Key]; ok {
			env[i] = a.Key + "=" + v
			continue
		}
		idx[a.Key] = len(env)
		env = append(env, a.Key+"="+v)
	}
	if len(env) > 0 {
		env = append([]string{fmt.Sprintf("|%d", len(env))}, env...)
	}
	return strings.Join(append(env, argv...), " ")
}

func (d *dispatcher) mount(m *instructions.Mount) (Mount, error) {
	out := Mount{Type: string(m.Type), From: m.From, Source: m.Source, ReadOnly: m.ReadOnly, CacheID: m.CacheID,
		Sharing: string(m.CacheSharing), Required: m.Required, SizeLimit: m.SizeLimit, Mode: m.Mode, UID: m.UID, GID: m.GID}
	target := m.Target
	if m.Env != nil {
		out.Env = *m.Env
	}
	switch m.Type {
	case instructions.MountTypeSSH:
		return out, fmt.Errorf("RUN --mount=type=ssh is not supported by ferry build")
	case instructions.MountTypeSecret:
		out.SecretID = m.CacheID
		if out.SecretID == "" {
			out.SecretID = path.Base(target)
		}
		if target == "" && out.Env == "" {
			target = "/run/secrets/" + out.SecretID
		}
		if out.SecretID == "" || out.SecretID == "." || out.SecretID == "/" {
			return out, fmt.Errorf("RUN --mount=type=secret needs id= or target=")
		}
		out.CacheID = ""
	case instructions.MountTypeCache:
		if out.Sharing == "" {
			out.Sharing = string(instructions.MountSharingShared)
		}
	}
	if target != "" {
		if !path.IsAbs(target) {
			target = path.Join(d.workdir(), target)
		}
		target = path.Clean(target)
	} else if m.Type != instructions.MountTypeSecret {
		return out, fmt.Errorf("RUN --mount=type=%s needs a target", m.Type)
	}
	out.Target = target
	if m.Type == instructions.MountTypeCache && out.CacheID == "" {
		out.CacheID = target
	}
	if m.From != "" {
		out.FromStage = d.s.file.Stage(m.From)
	}
	return out, nil
}

func (d *dispatcher) workdir() string {
	if d.cfg.WorkingDir == "" {
		return "/"
	}
	return d.cfg.WorkingDir
}

type copyArgs struct {
	add           bool
	sd            instructions.SourcesAndDest
	from          string
	chown, chmod  string
	link, parents bool
	exclude       []string
	unpack        bool
}

func (d *dispatcher) copy(st *Step, a copyArgs) error {
	st.Kind = Copy
	cmd := "COPY"
	if a.add {
		cmd = "ADD"
	}
	if a.chmod != "" {
		p, err := strconv.ParseUint(a.chmod, 8, 32)
		if err != nil || p > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", a.chmod)
		}
	}
	for _, src := range a.sd.SourcePaths {
		switch {
		case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
			if !a.add {
				return fmt.Errorf("source can't be a URL for COPY")
			}
			return fmt.Errorf("ADD %s: ferry build does not fetch URLs; download it in a RUN step (wget/curl) or into the context", src)
		case strings.HasPrefix(src, "git@") || strings.HasSuffix(src, ".git") && strings.Contains(src, "://"):
			return fmt.Errorf("%s %s: git sources are not supported by ferry build", cmd, src)
		}
	}
	c := &CopyStep{Add: a.add, Sources: append([]string(nil), a.sd.SourcePaths...), Dest: destPath(d.workdir(), a.sd.DestPath),
		From: a.from, Chown: a.chown, Chmod: a.chmod, Link: a.link, Parents: a.parents,
		Exclude: append([]string(nil), a.exclude...), Unpack: a.add && a.unpack}
	for _, sc := range a.sd.SourceContents {
		c.Inline = append(c.Inline, InlineFile{Name: sc.Path, Data: sc.Data})
	}
	if a.from != "" {
		c.FromStage = d.s.file.Stage(a.from)
	}
	h := cmd
	if a.parents {
		h += " --parents"
	}
	if a.chown != "" {
		h += " --chown=" + a.chown
	}
	if a.chmod != "" {
		h += " --chmod=" + a.chmod
	}
	for _, s := range a.sd.SourcePaths {
		h += " " + s
	}
	for _, s := range a.sd.SourceContents {
		h += " <<" + s.Path
	}
	h += " " + a.sd.DestPath + " # buildkit"
	st.Copy = c
	st.History = h
	return nil
}

func (d *dispatcher) expose(c *instructions.ExposeCommand) (string, error) {
	var ports []string
	for _, p := range c.Ports {
		ws, err := d.lex.ProcessWords(p, d.state)
		if err != nil {
			return "", err
		}
		for _, w := range ws {
			ps, err := parsePort(w)
			if err != nil {
				return "", err
			}
			ports = append(ports, ps...)
		}
	}
	if d.cfg.ExposedPorts == nil {
		d.cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		d.cfg.ExposedPorts[p] = struct{}{}
	}
	return fmt.Sprintf("EXPOSE %v", ports), nil
}

// parsePort turns "80", "80/udp" or "8000-8002/tcp" into "port/proto" entries.
func parsePort(raw string) ([]string, error) {
	p, proto, _ := strings.Cut(raw, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("invalid port: %q: invalid proto: %s", raw, proto)
	}
	if i := strings.LastIndex(p, ":"); i >= 0 { // ip:host:container: only the container port counts
		p = p[i+1:]
	}
	lo, hi, isRange := strings.Cut(p, "-")
	start, err := strconv.Atoi(lo)
	if err != nil || start < 0 || start > 65535 {
		return nil, fmt.Errorf("invalid containerPort: %s", p)
	}
	end := start
	if isRange {
		if end, err = strconv.Atoi(hi); err != nil || end < start || end > 65535 {
			return nil, fmt.Errorf("invalid port range: %s", p)
		}
	}
	var out []string
	for i := start; i <= end; i++ {
		out = append(out, strconv.Itoa(i)+"/"+proto)
	}
	return out, nil
}

// normalizeWorkdir resolves a WORKDIR against the current one.
func normalizeWorkdir(cur, p string) string {
	if !path.IsAbs(p) {
		if cur == "" {
			cur = "/"
		}
		p = path.Join(cur, p)
	}
	return path.Clean(p)
}

// destPath makes a COPY destination absolute against workdir, keeping a
// trailing slash (which means "a directory").
func destPath(workdir, p string) string {
	dir := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || p == "." || p == ""
	if !path.IsAbs(p) {
		p = path.Join(workdir, p)
	}
	p = path.Clean(p)
	if dir && p != "/" {
		p += "/"
	}
	return p
}

func addEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if key, _, _ := strings.Cut(kv, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// validSignal accepts SIGTERM, TERM and numbers, as Docker's STOPSIGNAL.
func validSignal(s string) bool {
	if n, err := strconv.Atoi(s); err == nil {
		return n > 0 && n < 65
	}
	s = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if strings.HasPrefix(s, "RTMIN") || strings.HasPrefix(s, "RTMAX") {
		return true
	}
	for i := syscall.Signal(1); i < 32; i++ {
		if strings.EqualFold(strings.TrimPrefix(strings.ToUpper(unixSignalName(i)), "SIG"), s) {
			return true
		}
	}
	return false
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT", syscall.SIGILL: "ILL", syscall.SIGTRAP: "TRAP",
	syscall.SIGABRT: "ABRT", syscall.SIGBUS: "BUS", syscall.SIGFPE: "FPE", syscall.SIGKILL: "KILL", syscall.SIGUSR1: "USR1",
	syscall.SIGSEGV: "SEGV", syscall.SIGUSR2: "USR2", syscall.SIGPIPE: "PIPE", syscall.SIGALRM: "ALRM", syscall.SIGTERM: "TERM",
	syscall.SIGSTKFLT: "STKFLT", syscall.SIGCHLD: "CHLD", syscall.SIGCONT: "CONT", syscall.SIGSTOP: "STOP", syscall.SIGTSTP: "TSTP",
	syscall.SIGTTIN: "TTIN", syscall.SIGTTOU: "TTOU", syscall.SIGURG: "URG", syscall.SIGXCPU: "XCPU", syscall.SIGXFSZ: "XFSZ",
	syscall.SIGVTALRM: "VTALRM", syscall.SIGPROF: "PROF", syscall.SIGWINCH: "WINCH", syscall.SIGIO: "IO", syscall.SIGPWR: "PWR",
	syscall.SIGSYS: "SYS",
}

func unixSignalName(s syscall.Signal) string { return signalNames[s] }

func cloneConfig(c v1.Config) v1.Config {
	out := c
	out.Env = append([]string(nil), c.Env...)
	out.Cmd = append([]string(nil), c.Cmd...)
	out.Entrypoint = append([]string(nil), c.Entrypoint...)
	out.Shell = append([]string(nil), c.Shell...)
	out.OnBuild = append([]string(nil), c.OnBuild...)
	if c.Cmd == nil {
		out.Cmd = nil
	}
	if c.Entrypoint == nil {
		out.Entrypoint = nil
	}
	if c.Shell == nil {
		out.Shell = nil
	}
	if c.OnBuild == nil {
		out.OnBuild = nil
	}
	if c.Env == nil {
		out.Env = nil
	}
	out.Labels = cloneSet(c.Labels)
	out.Volumes = cloneSet(c.Volumes)
	out.ExposedPorts = cloneSet(c.ExposedPorts)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = append([]string(nil), h.Test...)
		out.Healthcheck = &h
	}
	return out
}

func cloneSet[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
