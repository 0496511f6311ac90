package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the CLI in-process and returns its exit code and output.
func runRegistryCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	g := &globals{out: &out, err: &errb}
	root := newRoot(g)
	root.SetArgs(args)
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = 1
		errb.WriteString(err.Error())
	}
	return code, out.String() + errb.String()
}

func TestRegistryAdminVerbs(t *testing.T) {
	root := t.TempDir()
	r := func(args ...string) string {
		t.Helper()
		code, out := runRegistryCLI(t, append([]string{"registry", "--root", root}, args...)...)
		if code != 0 {
			t.Fatalf("ferry registry %s: %s", strings.Join(args, " "), out)
		}
		return out
	}
	r("org", "create", "acme")
	if code, out := runRegistryCLI(t, "registry", "--root", root, "org", "create", "acme"); code == 0 {
		t.Fatalf("duplicate org accepted: %s", out)
	}
	out := r("token", "create", "--org", "acme", "--scope", "pull", "--expires", "30d", "--registry", "reg.example:5000")
	secret := regexp.MustCompile(`(?m)^token:\s+(ferry_\S+)$`).FindStringSubmatch(out)
	id := regexp.MustCompile(`(?m)^id:\s+(\S+)$`).FindStringSubmatch(out)
	if secret == nil || id == nil || !strings.Contains(out, "skopeo login reg.example:5000 -u acme") || !strings.Contains(out, "crane auth login reg.example:5000 -u acme") {
		t.Fatalf("token create output:\n%s", out)
	}
	if list := r("token", "list", "--org", "acme"); !strings.Contains(list, id[1]) || strings.Contains(list, secret[1]) || !strings.Contains(list, "active") {
		t.Fatalf("token list:\n%s", list)
	}
	r("token", "revoke", id[1])
	if list := r("token", "list"); !strings.Contains(list, "revoked") {
		t.Fatalf("token list after revoke:\n%s", list)
	}
	if orgs := r("org", "list", "--format", "json"); !strings.Contains(orgs, `"name":"acme"`) {
		t.Fatalf("org list: %s", orgs)
	}
	if list := r("org", "list"); !strings.Contains(list, "USED") || !strings.Contains(list, "100 GiB (default)") {
		t.Fatalf("org list:\n%s", list)
	}
	r("org", "quota", "acme", "5GiB")
	if list := r("org", "list"); !strings.Contains(list, "5.0 GiB") || strings.Contains(list, "(default)") {
		t.Fatalf("org list after quota:\n%s", list)
	}
	if orgs := r("org", "list", "--format", "json"); !strings.Contains(orgs, `"quota_bytes":5368709120`) {
		t.Fatalf("org list json after quota: %s", orgs)
	}
	r("org", "quota", "acme", "unlimited")
	if list := r("org", "list"); !strings.Contains(list, "unlimited") {
		t.Fatalf("org list after unlimited:\n%s", list)
	}
	for _, bad := range []string{"lots", "0", "-5GiB"} {
		if code, out := runRegistryCLI(t, "registry", "--root", root, "org", "quota", "acme", bad); code == 0 {
			t.Fatalf("quota %q accepted: %s", bad, out)
		}
	}
	if code, _ := runRegistryCLI(t, "registry", "--root", root, "org", "quota", "nobody", "1GiB"); code == 0 {
		t.Fatal("quota of a missing org accepted")
	}
	r("org", "quota", "acme", "default")
	if gc := r("gc", "--dry-run"); !strings.Contains(gc, "would free 0 blobs") {
		t.Fatalf("gc: %s", gc)
	}
	r("org", "delete", "acme")
	if code, _ := runRegistryCLI(t, "registry", "--root", root, "token", "create", "--org", "acme"); code == 0 {
		t.Fatal("token for a deleted org")
	}
	if code, _ := runRegistryCLI(t, "registry", "--root", root, "token", "create", "--org", "x", "--expires", "soon"); code == 0 {
		t.Fatal("bad --expires accepted")
	}
}
