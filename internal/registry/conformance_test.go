package registry

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ferryvm/ferry/internal/registry/store"
	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// conformanceModule is the OCI distribution-spec conformance suite, pinned
// in go.mod; the test builds its main package and runs it against an
// in-process registry with all four workflows and the cross-mount
// repository, authenticated with an org token through the token flow.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"

func TestOCIConformance(t *testing.T) {
	prereq.Short(t, "the OCI conformance suite")
	tr := newTestRegistry(t)
	secret := tr.org(t, "conformance-org", store.ScopePush)
	runConformance(t, tr.host, "conformance-org", secret)
}

// runConformance builds the conformance suite and runs it against the
// registry at host as user (an org) with password (its push token).
func runConformance(t *testing.T, host, user, password string) {
	t.Helper()
	prereq.Short(t, "the OCI conformance suite")
	goBin := prereq.Tool(t, "go")
	bin := filepath.Join(t.TempDir(), "conformance")
	build := exec.Command(goBin, "build", "-o", bin, conformanceModule)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", conformanceModule, err, out)
	}
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME="+user,
		"OCI_PASSWORD="+password,
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=true",
		"OCI_API_BLOBS_DELETE=true",
		"OCI_API_MANIFESTS_DELETE=true",
		"OCI_API_TAGS_DELETE=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_LOG=error",
	)
	out, err := cmd.CombinedOutput()
	count := func(result string) int {
		return len(regexp.MustCompile(`(?m)^  [^\n]*:\s+`+result+`$`).FindAll(out, -1))
	}
	t.Logf("conformance: %d pass, %d fail, %d disabled", count("Pass"), count("Fail"), count("Disabled"))
	if os.Getenv("FERRY_CONFORMANCE_OUT") != "" {
		_ = os.WriteFile(os.Getenv("FERRY_CONFORMANCE_OUT"), out, 0o644)
		if b, err := os.ReadFile(filepath.Join(results, "results.yaml")); err == nil {
			_ = os.WriteFile(os.Getenv("FERRY_CONFORMANCE_OUT")+".yaml", b, 0o644)
		}
	}
	if err != nil {
		t.Fatalf("conformance suite failed: %v\n%s", err, tail(out, 6000))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
