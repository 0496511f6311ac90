package dockerapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestDockerCLI drives ferry with the docker CLI (no engine runs here):
// every step is what a user types, checked by what they would see.
func TestDockerCLI(t *testing.T) {
	e := newDockerEnv(t)

	t.Run("run --rm: output and exit code, then gone", func(t *testing.T) {
		r := e.run(nil, "run", "--rm", "--name", "once", "busybox:vm", "sh", "-c", "echo out; echo err >&2; exit 3")
		if r.code != 3 || !strings.Contains(r.stdout, "out") || !strings.Contains(r.stdout+r.stderr, "err") {
			t.Fatalf("docker run --rm: %+v, want exit 3 with the output", r)
		}
		eventually(t, "--rm removes the container", func() error {
			if out := e.ok("ps", "-a", "-q", "--filter", "name=once"); out != "" {
				return fmt.Errorf("still listed: %q", out)
			}
			return nil
		})
	})

	t.Run("run -d -p: HTTP, port mapping, one world", func(t *testing.T) {
		prereq.Tool(t, "curl")
		id := strings.TrimSpace(e.ok("run", "-d", "--name", "web", "--label", "tier=front", "-p", "18080:80",
			"busybox:vm", "httpd", "-f", "-p", "80", "-h", "/etc"))
		if len(id) != 64 {
			t.Fatalf("docker run -d printed %q, want a 64-hex ID", id)
		}
		var ports map[string][]struct{ HostIp, HostPort string }
		if err := json.Unmarshal([]byte(e.ok("inspect", "-f", "{{json .NetworkSettings.Ports}}", "web")), &ports); err != nil {
			t.Fatal(err)
		}
		if b := ports["80/tcp"]; len(b) == 0 || b[0].HostPort != "18080" {
			t.Fatalf("inspect ports = %v, want 80/tcp on 18080", ports)
		}
		if out := e.ok("port", "web", "80"); !strings.Contains(out, ":18080") {
			t.Fatalf("docker port = %q", out)
		}
		eventually(t, "HTTP through the published port", func() error {
			out, err := e.inNetns("curl", "-sf", "--max-time", "5", "http://127.0.0.1:18080/passwd")
			if err != nil || !strings.Contains(out, "root:x:0:0") {
				return fmt.Errorf("curl: %v: %s", err, out)
			}
			return nil
		})
		// The container is a machine: same ID, name and labels.
		m, err := e.ferry.GetMachine(context.Background(), "", "web")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, m.ID) || m.Config.Metadata["tier"] != "front" {
			t.Fatalf("ferry sees machine %s labels %v; docker ID %s", m.ID, m.Config.Metadata, id)
		}
		if out := e.ok("ps", "--format", "{{.ID}}", "--filter", "name=web"); strings.TrimSpace(out) != m.ID[:12] {
			t.Fatalf("docker ps ID %q, ferry ID %s", out, m.ID)
		}
		if out := e.ok("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", m.ID); out != fmt.Sprintf("running %d\n", m.PID) {
			t.Fatalf("docker inspect by ferry's ID: %q, want running %d", out, m.PID)
		}
	})

	t.Run("ps filters", func(t *testing.T) {
		for _, f := range []string{"label=tier=front", "name=web", "status=running", "ancestor=busybox:vm"} {
			if out := e.ok("ps", "--format", "{{.Names}}", "--filter", f); strings.TrimSpace(out) != "web" {
				t.Errorf("ps --filter %s = %q, want web", f, out)
			}
		}
		if out := e.ok("ps", "-q", "--filter", "label=tier=back"); out != "" {
			t.Errorf("ps --filter label=tier=back = %q, want nothing", out)
		}
	})

	t.Run("exec: exit code, stdin, -it on a pty", func(t *testing.T) {
		if r := e.run(nil, "exec", "web", "sh", "-c", "echo in-guest; exit 4"); r.code != 4 || r.stdout != "in-guest\n" {
			t.Fatalf("exec: %+v", r)
		}
		if r := e.run(strings.NewReader("via-stdin\n"), "exec", "-i", "web", "cat"); r.code != 0 || r.stdout != "via-stdin\n" {
			t.Fatalf("exec -i: %+v", r)
		}
		prereq.PTY(t)
		c := e.cmd("exec", "-it", "web", "sh")
		f, err := pty.StartWithSize(c, &pty.Winsize{Rows: 30, Cols: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		read := make(chan struct{})
		go func() { _, _ = io.Copy(&out, f); close(read) }()
		_, _ = io.WriteString(f, "tty; exit 6\n")
		if err := c.Wait(); err == nil || c.ProcessState.ExitCode() != 6 {
			t.Fatalf("exec -it exit: %v, want 6; output %q", err, out.String())
		}
		f.Close()
		<-read
		if !strings.Contains(out.String(), "/dev/pts/") {
			t.Fatalf("exec -it output %q: want a guest pty", out.String())
		}
	})

	t.Run("stats, restart, rename", func(t *testing.T) {
		out := e.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "web")
		if !strings.HasPrefix(out, "web ") || !strings.Contains(out, "/ 256MiB") {
			t.Fatalf("docker stats = %q, want the VMM's memory against the guest's 256 MiB", out)
		}
		e.ok("restart", "-t", "1", "web")
		if out := e.ok("inspect", "-f", "{{.State.Status}}", "web"); out != "running\n" {
			t.Fatalf("after restart: %q", out)
		}
		e.ok("rename", "web", "web2")
		e.ok("rename", "web2", "web")
		if out := e.ok("ps", "--format", "{{.Names}}", "--filter", "name=web"); strings.TrimSpace(out) != "web" {
			t.Fatalf("after renames: %q", out)
		}
	})

	t.Run("top", func(t *testing.T) {
		out := e.ok("top", "web")
		if !strings.Contains(out, "UID") || !strings.Contains(out, "httpd -f -p 80 -h /etc") {
			t.Fatalf("docker top = %q, want the entrypoint listed", out)
		}
	})

	t.Run("cp both ways", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(src, []byte("copied in\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		e.ok("cp", src, "web:/tmp/")
		if r := e.run(nil, "exec", "web", "cat", "/tmp/in.txt"); r.stdout != "copied in\n" {
			t.Fatalf("file copied in reads %+v", r)
		}
		e.ok("cp", "web:/etc/passwd", filepath.Join(dir, "passwd"))
		if b, err := os.ReadFile(filepath.Join(dir, "passwd")); err != nil || !strings.Contains(string(b), "root:x:0:0") {
			t.Fatalf("file copied out: %q %v", b, err)
		}
		e.ok("cp", "web:/etc", filepath.Join(dir, "etc"))
		if _, err := os.Stat(filepath.Join(dir, "etc", "group")); err != nil {
			t.Fatalf("directory copied out: %v", err)
		}
		if r := e.run(nil, "cp", "web:/no/such", dir); r.code == 0 || !strings.Contains(r.stderr, "Could not find the file /no/such") {
			t.Fatalf("cp of a missing path: %+v", r)
		}
	})

	t.Run("cp on a stopped container: in before the first start, out after the stop; symlinks stay inside", func(t *testing.T) {
		dir := t.TempDir()
		secret := filepath.Join(dir, "host-only-secret")
		if err := os.WriteFile(secret, []byte("host\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(src, []byte("copied while stopped\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		e.ok("create", "--name", "cpstop", "busybox:vm", "sh", "-c",
			"cat /in.txt; echo guest-wrote > /out.txt; ln -s / /escape; ln -s ../../../../.. /up; ln -s /etc/passwd /etc/pw; ln -s ../etc/pw /abs")
		e.ok("cp", src, "cpstop:/in.txt")
		if out := e.ok("start", "-a", "cpstop"); out != "copied while stopped\n" {
			t.Fatalf("the guest read %q from the file copied in before its start", out)
		}
		e.ok("cp", "cpstop:/out.txt", filepath.Join(dir, "out.txt"))
		if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(b) != "guest-wrote\n" {
			t.Fatalf("file the guest wrote, copied out of the stopped container: %q %v", b, err)
		}
		// Symlinks resolve in the container's root, never the host's.
		for _, p := range []string{"/escape" + secret, "/up" + secret, "/escape/../../.." + secret} {
			if r := e.run(nil, "cp", "cpstop:"+p, filepath.Join(dir, "leak")); r.code == 0 || !strings.Contains(r.stderr, "Could not find the file") {
				t.Errorf("cp cpstop:%s: %+v, want the container's not-found", p, r)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "leak")); err == nil {
			t.Fatal("a host file came out through a symlink")
		}
		// -L follows /abs (../etc/pw → /etc/passwd) to the container's
		// /etc/passwd, not the host's.
		e.ok("cp", "-L", "cpstop:/abs", filepath.Join(dir, "passwd"))
		if b, _ := os.ReadFile(filepath.Join(dir, "passwd")); !strings.Contains(string(b), "root:x:0:0") {
			t.Fatalf("cp -L of /abs: %q, want the container's /etc/passwd", b)
		}
		// Copying in through /up lands in the container's root.
		e.ok("cp", src, "cpstop:/up/landed.txt")
		if _, err := os.Stat("/landed.txt"); err == nil {
			t.Fatal("a file copied through a symlink landed in the host's root")
		}
		if r := e.run(nil, "cp", "cpstop:/landed.txt", "-"); r.code != 0 || !strings.Contains(r.stdout, "copied while stopped") {
			t.Fatalf("cp out of /landed.txt: %+v", r)
		}
		e.ok("rm", "cpstop")
	})

	t.Run("volume and network create and use; bind mounts", func(t *testing.T) {
		prereq.Tool(t, "cryptsetup") // volumes are LUKS2 by default
		if out := e.ok("volume", "create", "data1"); strings.TrimSpace(out) != "data1" {
			t.Fatalf("volume create printed %q", out)
		}
		e.ok("run", "--rm", "-v", "data1:/data", "busybox:vm", "sh", "-c", "echo persisted > /data/f")
		if r := e.run(nil, "run", "--rm", "-v", "data1:/data:ro", "busybox:vm", "cat", "/data/f"); r.code != 0 || r.stdout != "persisted\n" {
			t.Fatalf("second container reads %+v", r)
		}
		if out := e.ok("volume", "ls", "--format", "{{.Name}} {{.Driver}}"); !strings.Contains(out, "data1 local") {
			t.Fatalf("volume ls = %q", out)
		}
		e.ok("volume", "rm", "data1")

		host := t.TempDir()
		if err := os.WriteFile(filepath.Join(host, "f"), []byte("from the host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := e.run(nil, "run", "--rm", "-v", host+":/host", "busybox:vm", "cat", "/host/f"); r.code != 0 || r.stdout != "from the host\n" {
			t.Fatalf("bind mount reads %+v", r)
		}

		e.ok("network", "create", "net1")
		e.ok("run", "-d", "--name", "srv", "--network", "net1", "busybox:vm", "httpd", "-f", "-p", "80", "-h", "/etc")
		eventually(t, "a container reaches another by name on a user network", func() error {
			r := e.run(nil, "run", "--rm", "--network", "net1", "busybox:vm", "wget", "-qO-", "http://srv/passwd")
			if r.code != 0 || !strings.Contains(r.stdout, "root:x:0:0") {
				return fmt.Errorf("%+v", r)
			}
			return nil
		})
		if out := e.ok("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{end}}", "net1"); !strings.Contains(out, "srv") {
			t.Fatalf("network inspect containers = %q", out)
		}
		e.ok("rm", "-f", "srv")
		e.ok("network", "rm", "net1")
	})

	t.Run("run -i and run -it attach the entrypoint", func(t *testing.T) {
		if r := e.run(strings.NewReader("piped\n"), "run", "--rm", "-i", "busybox:vm", "sh", "-c", "cat; exit 4"); r.code != 4 || r.stdout != "piped\n" {
			t.Fatalf("run -i: %+v", r)
		}
		prereq.PTY(t)
		c := e.cmd("run", "--rm", "-it", "busybox:vm", "sh")
		f, err := pty.Start(c)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var out bytes.Buffer
		read := make(chan struct{})
		go func() { _, _ = io.Copy(&out, f); close(read) }()
		_, _ = io.WriteString(f, "tty; exit 5\n")
		if err := c.Wait(); err == nil || c.ProcessState.ExitCode() != 5 {
			t.Fatalf("run -it exit: %v, want 5; output %q", err, out.String())
		}
		f.Close()
		<-read
		if !strings.Contains(out.String(), "/dev/pts/") {
			t.Fatalf("run -it output %q: want the entrypoint on a guest pty", out.String())
		}
	})

	t.Run("logs -f follows to the exit", func(t *testing.T) {
		e.ok("run", "-d", "--name", "counter", "busybox:vm", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done")
		out := e.ok("logs", "-f", "counter")
		if out != "line1\nline2\nline3\n" {
			t.Fatalf("logs -f = %q", out)
		}
		if out := e.ok("logs", "--tail", "1", "counter"); out != "line3\n" {
			t.Fatalf("logs --tail 1 = %q", out)
		}
	})

	t.Run("stop, start, rm", func(t *testing.T) {
		e.ok("stop", "-t", "2", "web")
		if out := e.ok("ps", "-a", "--format", "{{.State}}", "--filter", "name=web"); strings.TrimSpace(out) != "exited" {
			t.Fatalf("after stop: %q", out)
		}
		e.ok("start", "web")
		if out := e.ok("inspect", "-f", "{{.State.Running}}", "web"); out != "true\n" {
			t.Fatalf("after start: running=%q", out)
		}
		r := e.run(nil, "rm", "web")
		if r.code == 0 || !strings.Contains(r.stderr, "container is running") {
			t.Fatalf("rm of a running container: %+v, want a refusal", r)
		}
		e.ok("rm", "-f", "web")
		if r := e.run(nil, "inspect", "web"); r.code == 0 || !strings.Contains(r.stderr, "No such") {
			t.Fatalf("inspect after rm: %+v", r)
		}
	})

	t.Run("events during a run", func(t *testing.T) {
		lines := e.stream(t, "events", "--filter", "container=evt", "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}")
		if r := e.run(nil, "run", "--name", "evt", "busybox:vm", "sh", "-c", "exit 2"); r.code != 2 {
			t.Fatalf("run: %+v", r)
		}
		seen := until(t, lines, "die evt 2")
		if !strings.HasPrefix(seen[0], "create evt ") || !strings.HasPrefix(seen[1], "start evt ") {
			t.Fatalf("events %q: want create, start, die", seen)
		}
	})

	t.Run("pull, images, tag, rmi", func(t *testing.T) {
		reg := testimage.Registry(t)
		img, err := testimage.Random(7, 2, 4096)
		if err != nil {
			t.Fatal(err)
		}
		ref := testimage.Push(t, reg, "test/rand:1", img)
		if out := e.ok("pull", ref); !strings.Contains(out, "Downloaded newer image for "+ref) {
			t.Fatalf("pull printed %q", out)
		}
		e.ok("tag", ref, "mine:v1")
		out := e.ok("images", "--format", "{{.Repository}}:{{.Tag}}")
		if !strings.Contains(out, reg+"/test/rand:1") || !strings.Contains(out, "mine:v1") || !strings.Contains(out, "busybox:vm") {
			t.Fatalf("images = %q", out)
		}
		if out := e.ok("rmi", "mine:v1"); !strings.Contains(out, "Untagged: mine:v1") {
			t.Fatalf("rmi printed %q", out)
		}
		if r := e.run(nil, "image", "inspect", "mine:v1"); r.code == 0 {
			t.Fatalf("mine:v1 still there: %+v", r)
		}
	})

	t.Run("events --filter type=image: pull, tag, untag, delete", func(t *testing.T) {
		reg := testimage.Registry(t)
		img, err := testimage.Random(8, 1, 4096)
		if err != nil {
			t.Fatal(err)
		}
		ref := testimage.Push(t, reg, "test/evimg:1", img)
		lines := e.stream(t, "events", "--filter", "type=image", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
		e.ok("pull", ref)
		id := strings.TrimSpace(e.ok("image", "inspect", "--format", "{{.Id}}", ref))
		e.ok("tag", ref, "evimg:v2")
		e.ok("rmi", "evimg:v2")
		e.ok("rmi", ref)
		want := []string{
			"image pull " + ref + " " + reg + "/test/evimg",
			"image tag " + id + " evimg:v2",
			"image untag " + id + " " + id, // evimg:v2
			"image untag " + id + " " + id, // ref
		}
		seen := until(t, lines, "image delete "+id+" "+id)
		if len(seen) < len(want) || fmt.Sprint(seen[:len(want)]) != fmt.Sprint(want) {
			t.Fatalf("image events:\n%s\nwant first:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("build (classic) through ferry's builder", func(t *testing.T) {
		dir := t.TempDir()
		df := "FROM busybox:vm\nRUN echo built-in-vm > /msg\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/msg\", \"/hello.txt\"]\n"
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("from the context\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := e.ok("build", "-t", "built:1", dir)
		for _, want := range []string{"Step 1/3 : RUN echo built-in-vm > /msg", "Successfully built", "Successfully tagged built:1"} {
			if !strings.Contains(out, want) {
				t.Errorf("build output lacks %q:\n%s", want, out)
			}
		}
		if r := e.run(nil, "run", "--rm", "built:1"); r.code != 0 || r.stdout != "built-in-vm\nfrom the context\n" {
			t.Fatalf("run of the built image: %+v", r)
		}
	})

	t.Run("create of a missing image: 404, so the CLI pulls", func(t *testing.T) {
		r := e.run(nil, "run", "--rm", "127.0.0.1:1/nothing:here", "true")
		if r.code != 125 || !strings.Contains(r.stderr, "Unable to find image") {
			t.Fatalf("run of a missing image: %+v, want the CLI's pull attempt and exit 125", r)
		}
	})

	t.Run("refusals in dockerd's words: names, stopped containers, images in use, networks, volumes", func(t *testing.T) {
		id := strings.TrimSpace(e.ok("create", "--name", "walk", "busybox:vm", "true"))
		img := strings.TrimSpace(e.ok("image", "inspect", "--format", "{{.Id}}", "busybox:vm"))
		e.ok("network", "create", "walknet")
		e.ok("network", "connect", "walknet", "walk")
		if out := e.ok("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", "walk"); !strings.Contains(out, "walknet") {
			t.Errorf("after network connect the container is on %q", out)
		}
		e.ok("network", "disconnect", "walknet", "walk")
		const anyID = "<any container id>"
		short := strings.TrimPrefix(img, "sha256:")[:12]
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"create", "--name", "walk", "busybox:vm", "true"}, `Conflict. The container name "/walk" is already in use by container "` + id + `"`},
			{[]string{"rename", "walk", "walk"}, "Renaming a container with the same name as its current name"},
			{[]string{"kill", "walk"}, "Cannot kill container: walk: container " + id + " is not running"},
			{[]string{"exec", "walk", "true"}, "container " + id + " is not running"},
			// Any container of the image may be named: other subtests' stopped
			// containers use busybox:vm too.
			{[]string{"rmi", "busybox:vm"}, `conflict: unable to remove repository reference "busybox:vm" (must force) - container ` + anyID + " is using its referenced image " + short},
			{[]string{"rmi", short}, "conflict: unable to delete " + short + " (must be forced) - image is being used by stopped container " + anyID},
			{[]string{"network", "create", "walknet"}, "network with name walknet already exists"},
			{[]string{"rm", "nosuch"}, "No such container: nosuch"},
			{[]string{"volume", "rm", "nosuchvol"}, "no such volume"},
		} {
			want := regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(c.want), regexp.QuoteMeta(anyID), "[0-9a-f]{12}"))
			if r := e.run(nil, c.args...); r.code == 0 || !want.MatchString(r.stderr) {
				t.Errorf("docker %s: %+v, want %q", strings.Join(c.args, " "), r, c.want)
			}
		}
		e.ok("network", "rm", "walknet")
		if r := e.run(nil, "network", "rm", "walknet"); r.code == 0 || !strings.Contains(r.stderr, "network walknet not found") {
			t.Errorf("network rm of a removed network: %+v", r)
		}
		e.ok("rm", "walk")
	})

	t.Run("options a VM cannot honour are refused", func(t *testing.T) {
		for _, args := range [][]string{{"--privileged"}, {"--cap-add", "NET_ADMIN"}, {"--network", "host"}, {"--pid", "host"}} {
			r := e.run(nil, append(append([]string{"run", "--rm"}, args...), "busybox:vm", "true")...)
			if r.code != 125 || !strings.Contains(r.stderr, args[0]) {
				t.Errorf("docker run %v: %+v, want exit 125 and a message naming it", args, r)
			}
		}
	})
}

// until reads lines until one is last and returns them all, failing when
// the stream ends or 30 seconds pass first.
func until(t *testing.T, lines <-chan string, last string) []string {
	t.Helper()
	var seen []string
	timeout := time.After(30 * time.Second)
	for !contains(seen, last) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended before %q; saw %q", last, seen)
			}
			seen = append(seen, l)
		case <-timeout:
			t.Fatalf("no %q within 30s; saw %q", last, seen)
		}
	}
	return seen
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
