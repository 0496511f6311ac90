package cli

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/ferryvm/ferry/internal/testimage"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestPullProgressBarsOnTerminal runs pull on a pseudo-terminal: it draws
// one mpb bar per layer that ends in "Pull complete", and exits.
func TestPullProgressBarsOnTerminal(t *testing.T) {
	reg := testimage.Registry(t)
	ref := pushRandom(t, reg, "test/tty:v1", 11, 2, 256<<10)
	e := newFerryEnv(t)
	cmd := e.command([]string{"DOCKER_CONFIG=" + e.dockerCfg}, "pull", ref)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 100})
	if err != nil {
		prereq.PTY(t)
		t.Fatalf("start on a pty: %v", err)
	}
	defer tty.Close()
	var out bytes.Buffer
	_, _ = io.Copy(&out, tty) // EIO once the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("pull on a terminal: %v\n%s", err, out.String())
	}
	screen := out.String()
	if n := len(regexp.MustCompile(`[0-9a-f]{12}: +Pull complete`).FindAllString(screen, -1)); n < 2 {
		t.Errorf("want a completed bar per layer, got %d in:\n%q", n, screen)
	}
	if !strings.Contains(screen, "KiB") || !strings.Contains(screen, "Status: Downloaded newer image for") {
		t.Errorf("terminal output lacks byte counters or the status line:\n%q", screen)
	}
}
