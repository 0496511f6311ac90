package dockerapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// tcChildEnv marks the test binary re-run inside the daemon's network
// namespace as testcontainers' client: published ports listen there, and
// testcontainers dials them on localhost.
const tcChildEnv = "FERRY_TESTCONTAINERS_CHILD"

// TestTestcontainers runs testcontainers-go (v0.45) against ferry: a
// container with an exposed port and a wait strategy on it (testcontainers
// dials the mapped port and checks inside the container). Ryuk is disabled:
// its reaper is a container that bind-mounts the engine's socket, which a
// micro-VM cannot reach; containers are removed by Terminate instead.
func TestTestcontainers(t *testing.T) {
	e := newDockerEnv(t)
	ip := prereq.Tool(t, "ip")
	c := exec.Command(ip, "netns", "exec", e.netns, os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), append(e.env, tcChildEnv+"=1", "TESTCONTAINERS_RYUK_DISABLED=true")...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("testcontainers client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "testcontainers: ok") {
		t.Fatalf("testcontainers client said:\n%s", out)
	}
	if r := e.run(nil, "ps", "-aq"); r.stdout != "" {
		t.Fatalf("containers left after Terminate: %q", r.stdout)
	}
}

// TestTestcontainersRyuk: with Ryuk left on, testcontainers' reaper (a
// container bind-mounting the engine's socket) is refused with one line
// that says to set TESTCONTAINERS_RYUK_DISABLED=true. (The reaper's image
// is busybox tagged with its name: nothing is pulled here.)
func TestTestcontainersRyuk(t *testing.T) {
	e := newDockerEnv(t)
	e.ok("tag", "busybox:vm", "testcontainers/ryuk:0.14.0")
	ip := prereq.Tool(t, "ip")
	c := exec.Command(ip, "netns", "exec", e.netns, os.Args[0], "-test.run=^$")
	env := slices.DeleteFunc(os.Environ(), func(v string) bool { return strings.HasPrefix(v, "TESTCONTAINERS_RYUK_DISABLED=") })
	c.Env = append(env, append(e.env, tcChildEnv+"=ryuk")...)
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "testcontainers: refused clearly") {
		t.Fatalf("testcontainers client with Ryuk: %v\n%s", err, out)
	}
}

// testcontainersRyukClient starts a container with Ryuk on and expects
// the reaper's refusal, naming the setting.
func testcontainersRyukClient() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{Image: "busybox:vm", Cmd: []string{"sleep", "60"}},
		Started:          true,
	})
	if err == nil {
		_ = ctr.Terminate(context.Background())
		return fmt.Errorf("started with Ryuk on, want the reaper refused")
	}
	const want = "a micro-VM cannot connect to a host socket through a mount; for testcontainers, whose Ryuk reaper mounts the engine's socket, set TESTCONTAINERS_RYUK_DISABLED=true"
	if !strings.Contains(err.Error(), want) {
		return fmt.Errorf("error %q does not say to set TESTCONTAINERS_RYUK_DISABLED=true", err)
	}
	fmt.Println("testcontainers: refused clearly:", err)
	return nil
}

// testcontainersClient is the child's work: start busybox's httpd with
// port 80 exposed, wait until it listens, fetch from it, terminate.
func testcontainersClient() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:        "busybox:vm",
			Cmd:          []string{"httpd", "-f", "-p", "80", "-h", "/etc"},
			ExposedPorts: []string{"80/tcp"},
			WaitingFor:   wait.ForHTTP("/passwd").WithPort("80/tcp").WithStartupTimeout(2 * time.Minute),
		},
		Started: true,
	})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer func() { _ = ctr.Terminate(context.Background()) }()
	host, err := ctr.Host(ctx)
	if err != nil {
		return err
	}
	port, err := ctr.MappedPort(ctx, "80/tcp")
	if err != nil {
		return err
	}
	resp, err := http.Get(fmt.Sprintf("http://%s:%s/passwd", host, port.Port()))
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "root:x:0:0") {
		return fmt.Errorf("GET /passwd = %q", body)
	}
	code, _, err := ctr.Exec(ctx, []string{"sh", "-c", "exit 3"})
	if err != nil || code != 3 {
		return fmt.Errorf("exec: code %d, %v", code, err)
	}
	if err := ctr.Terminate(ctx); err != nil {
		return fmt.Errorf("terminate: %w", err)
	}
	fmt.Println("testcontainers: ok")
	return nil
}
