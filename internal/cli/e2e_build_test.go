package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/image"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		mode := os.FileMode(0o644)
		if strings.HasPrefix(c, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func tarGz(t *testing.T, files map[string]string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for p, c := range files {
		tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c))})
		io.WriteString(tw, c)
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

// everyInstruction is a Dockerfile with every instruction ferry build
// supports (the heredoc delimiter is END, the way Dockerfiles often spell it).
const everyInstruction = `ARG BASE=busybox:vm
FROM ${BASE} AS builder
ARG GREETING=hello
ENV OUT=/out
WORKDIR /src
COPY app.sh .
RUN --mount=type=cache,target=/cache <<END
set -e
mkdir -p $OUT
echo "$GREETING from a heredoc" > $OUT/greeting
touch /cache/run-$$
ls /cache | wc -l | tr -d ' ' > $OUT/cache-entries
END
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-16 > /out/tok-hash
RUN echo scratch > /src/tmp && rm /src/tmp

FROM busybox:vm
LABEL org.example.stage=final
MAINTAINER ferry tests
COPY --from=builder /out/ /opt/out/
ADD bundle.tar.gz /opt/arch/
COPY --chown=ferry:ferry --chmod=0750 app.sh /usr/local/bin/app
COPY <<END /etc/motd
built by ferry
END
RUN --mount=type=bind,from=builder,source=/src,target=/mnt/src cp /mnt/src/app.sh /opt/copied-via-bind && rm /bin/vi
RUN --network=none sh -c 'ls /sys/class/net | tr "\n" " " > /opt/netifs'
USER ferry
EXPOSE 8080/tcp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s CMD true
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo child
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["arg1"]
`

const appScript = "#!/bin/sh\n" +
	"echo \"greeting=$(cat /opt/out/greeting)\"\n" +
	"echo \"arch=$(cat /opt/arch/pkg/f)\"\n" +
	"echo \"uid=$(id -u) motd=$(cat /etc/motd)\"\n" +
	"echo \"netifs=$(cat /opt/netifs)\"\n" +
	"test -e /bin/vi && echo vi-present || echo vi-gone\n" +
	"echo \"args=$*\"\n"

// TestBuildEndToEnd runs `ferry build` against a daemon that boots real
// builder VMs: a Dockerfile with every instruction, two stages (two
// boots), heredocs, cache/secret/bind mounts, --network=none; the image
// runs with no pull; -o type=oci writes a layout umoci unpacks to the
// same tree (RUN rm → a whiteout it honours); the secret is in no layer;
// a rebuild is all CACHED and boots nothing; a failing RUN shows its
// output and exit code and tags nothing; SOURCE_DATE_EPOCH gives the same
// digest twice.
func TestBuildEndToEnd(t *testing.T) {
	e := vmEnv(t)
	umoci := prereq.Tool(t, "umoci")
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	writeFiles(t, ctxDir, map[string]string{
		"Dockerfile":    everyInstruction,
		".dockerignore": "*.log\n",
		"app.sh":        appScript,
		"build.log":     "ignored",
		"bundle.tar.gz": tarGz(t, map[string]string{"pkg/f": "from an archive"}),
	})
	secret := "tok-" + strings.Repeat("s3cr3t", 8)
	secretFile := filepath.Join(dir, "tok")
	os.WriteFile(secretFile, []byte(secret), 0o600)
	out := filepath.Join(dir, "image.tar")

	r := e.run(nil, "build", "-t", "app:1", "--secret", "id=tok,src="+secretFile, "-o", "type=oci,dest="+out, "--label", "cli=yes", ctxDir)
	if r.code != 0 {
		t.Fatalf("build: %s\ndaemon:\n%s", r, e.daemonLog)
	}
	for _, want := range []string{"[builder 5/7] RUN --mount=type=cache", "[stage 1 7/17] RUN --mount=type=bind", "2 builder VM(s) booted", "naming to docker.io/library/app:1"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("build output lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(e.ok("ps", "-a", "--all-apps"), "build-") {
		t.Error("a builder machine outlived its build")
	}

	// The config.
	var dets []image.Details
	if err := json.Unmarshal([]byte(e.ok("image", "inspect", "app:1")), &dets); err != nil || len(dets) != 1 {
		t.Fatal(err)
	}
	c := dets[0].Config.Config
	if c.User != "ferry" || strings.Join(c.Entrypoint, " ") != "/usr/local/bin/app" || strings.Join(c.Cmd, " ") != "arg1" ||
		c.Labels["org.example.stage"] != "final" || c.Labels["cli"] != "yes" || c.StopSignal != "SIGINT" ||
		c.Healthcheck == nil || len(c.OnBuild) != 1 || strings.Join(c.Shell, " ") != "/bin/sh -c" {
		t.Errorf("config = %+v", c)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Error("VOLUME lost")
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Error("EXPOSE lost")
	}

	// It runs, from the cache, as built.
	run := e.run(nil, "run", "--rm", "app:1")
	for _, want := range []string{"greeting=hello from a heredoc", "arch=from an archive", "uid=1000 motd=built by ferry", "netifs=lo ", "vi-gone", "args=arg1"} {
		if !strings.Contains(run.stdout, want) {
			t.Errorf("ferry run app:1 lacks %q:\n%s", want, run)
		}
	}

	// -o type=oci: umoci unpacks the same tree; the rm is a whiteout it honours.
	layout := filepath.Join(dir, "layout")
	os.MkdirAll(layout, 0o755)
	if b, err := exec.Command("tar", "-xf", out, "-C", layout).CombinedOutput(); err != nil {
		t.Fatalf("untar: %v %s", err, b)
	}
	bundle := filepath.Join(dir, "bundle")
	if b, err := exec.Command(umoci, "unpack", "--image", layout+":docker.io/library/app:1", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, b)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	if _, err := os.Lstat(filepath.Join(rootfs, "bin/vi")); !os.IsNotExist(err) {
		t.Error("umoci's unpack still has /bin/vi: the RUN rm was not a whiteout")
	}
	for p, want := range map[string]string{"opt/copied-via-bind": appScript, "opt/arch/pkg/f": "from an archive", "etc/motd": "built by ferry\n"} {
		if b, _ := os.ReadFile(filepath.Join(rootfs, p)); string(b) != want {
			t.Errorf("umoci: %s = %q, want %q", p, b, want)
		}
	}
	fi, err := os.Stat(filepath.Join(rootfs, "usr/local/bin/app"))
	if err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("COPY --chmod=0750: %v %v", fi, err)
	}

	// The secret reached the RUN, and is in no layer.
	h := sha256.Sum256([]byte(secret))
	if b, _ := os.ReadFile(filepath.Join(rootfs, "opt/out/tok-hash")); len(b) < 16 || !strings.HasPrefix(hex.EncodeToString(h[:]), strings.TrimSpace(string(b))) {
		t.Errorf("the RUN did not see the secret: tok-hash %q", b)
	}
	blobs, _ := filepath.Glob(filepath.Join(layout, "blobs/sha256/*"))
	for _, p := range blobs {
		raw, _ := os.ReadFile(p)
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			if un, err := io.ReadAll(zr); err == nil {
				raw = un
			}
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("blob %s holds the secret", filepath.Base(p))
		}
		if bytes.Contains(raw, []byte("build.log")) {
			t.Errorf("blob %s holds the .dockerignore'd build.log", filepath.Base(p))
		}
	}

	// Nothing changed: all CACHED, no VM.
	r = e.run(nil, "build", "-t", "app:2", "--secret", "id=tok,src="+secretFile, ctxDir)
	if r.code != 0 || !strings.Contains(r.stderr, "no VM booted") || strings.Count(r.stderr, "CACHED") != 10 {
		t.Errorf("rebuild: %s", r)
	}

	// A failing RUN: its output and exit code, no tag.
	failDir := filepath.Join(dir, "fail")
	writeFiles(t, failDir, map[string]string{"Dockerfile": "FROM busybox:vm\nRUN echo about to fail && exit 7\n"})
	f := e.run(nil, "build", "-t", "broken:1", failDir)
	if f.code == 0 || !strings.Contains(f.stderr, "about to fail") || !strings.Contains(f.stderr, "exit code 7") {
		t.Errorf("failing build: %s", f)
	}
	if r := e.run(nil, "image", "inspect", "broken:1"); r.code == 0 {
		t.Error("a failed build tagged its image")
	}

	// SOURCE_DATE_EPOCH: the same inputs, the same digest.
	reproDir := filepath.Join(dir, "repro")
	writeFiles(t, reproDir, map[string]string{"Dockerfile": "FROM busybox:vm\nCOPY f /f\nRUN mkdir -p /var/x && echo made > /var/x/y && rm /bin/vi\n", "f": "x"})
	ids := map[string]bool{}
	for i := 0; i < 2; i++ {
		cmd := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg, "SOURCE_DATE_EPOCH=1700000000"}, "build", "-q", "--no-cache", reproDir)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("reproducible build %d: %v", i, err)
		}
		ids[strings.TrimSpace(string(b))] = true
	}
	if len(ids) != 1 {
		t.Errorf("SOURCE_DATE_EPOCH builds gave %d digests: %v", len(ids), ids)
	}
}
