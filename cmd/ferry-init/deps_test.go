package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// What ferry-init may link. It runs as PID 1 inside every guest: each
// package here is code in every machine's trusted base and bytes in every
// initramfs, so adding one is a decision, made by editing these lists.
var (
	// initPackages are ferry's own packages ferry-init may link.
	initPackages = map[string]bool{
		"github.com/ferryvm/ferry/cmd/ferry-init":  true,
		"github.com/ferryvm/ferry/internal/guest":  true,
		"github.com/ferryvm/ferry/internal/initd":  true,
		"github.com/ferryvm/ferry/internal/luks2":  true,
		"github.com/ferryvm/ferry/internal/mkext4": true,
	}
	// initModules are the third-party modules ferry-init may link.
	initModules = map[string]bool{
		"golang.org/x/sys":               true,
		"golang.org/x/crypto":            true, // xts and argon2: opening LUKS2 volumes (internal/luks2)
		"github.com/vishvananda/netlink": true,
		"github.com/vishvananda/netns":   true,
	}
	// stdForbidden are standard-library packages ferry-init must not link
	// even though the rest of the standard library is allowed: an HTTP
	// stack in PID 1, or cgo (ferry-init is static).
	stdForbidden = []string{"net/http", "runtime/cgo", "crypto/tls", "os/user"}
)

// TestDeps fails when ferry-init links a package that is not on the
// allowlist above: any ferry package but initPackages, any module but
// initModules, or one of stdForbidden.
func TestDeps(t *testing.T) {
	prereq.Tool(t, "go")
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{with .Module}}{{.Path}}{{end}}", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("go list -deps: unexpected line %q", line)
		}
		pkg, std := f[0], f[1] == "true"
		switch {
		case std:
			for _, bad := range stdForbidden {
				if pkg == bad || strings.HasPrefix(pkg, bad+"/") {
					t.Errorf("ferry-init links %s (standard library, but forbidden in the guest init)", pkg)
				}
			}
		case len(f) < 3:
			t.Errorf("ferry-init links %s, which belongs to no module", pkg)
		case f[2] == "github.com/ferryvm/ferry":
			if !initPackages[pkg] {
				t.Errorf("ferry-init links %s: not one of ferry's packages allowed in the guest (initPackages in %s)", pkg, "cmd/ferry-init/deps_test.go")
			}
		case !initModules[f[2]]:
			t.Errorf("ferry-init links %s from module %s: not an allowed module (initModules in cmd/ferry-init/deps_test.go)", pkg, f[2])
		}
	}
}
