package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps fails when ferry-init links a host-side package: anything of
// ferry's own but internal/guest, internal/initd and internal/mkext4, or one of the big
// host-side modules.
func TestDeps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH: cannot list ferry-init's dependencies")
	}
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := map[string]bool{
		"github.com/ferryvm/ferry/cmd/ferry-init":  true,
		"github.com/ferryvm/ferry/internal/guest":  true,
		"github.com/ferryvm/ferry/internal/initd":  true,
		"github.com/ferryvm/ferry/internal/mkext4": true,
	}
	forbidden := []string{
		"github.com/ferryvm/ferry/",
		"github.com/distribution/",
		"github.com/google/go-containerregistry",
		"go.etcd.io/bbolt",
		"github.com/spf13/cobra",
		"modernc.org/sqlite",
		"github.com/jackc/pgx",
		"github.com/Microsoft/hcsshim",
		"github.com/prometheus/",
		"net/http",
		"runtime/cgo",
	}
	for _, pkg := range strings.Fields(string(out)) {
		if allowed[pkg] {
			continue
		}
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f) {
				t.Errorf("ferry-init links %s (forbidden: %s)", pkg, f)
			}
		}
	}
}
