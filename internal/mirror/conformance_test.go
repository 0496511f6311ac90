package mirror

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ferryvm/ferry/internal/testutil/prereq"
)

// TestOCIConformance runs the OCI distribution-spec conformance suite
// (pinned in go.mod, as internal/registry's test runs it) against the
// mirror for the push, pull and tags-list workflows: the mirror refuses
// deletes, so those workflows are not enabled, and the content store
// holds sha256 blobs only, so the sha512 data sets are off. Indexes,
// nested indexes and artifacts (with and without subjects) are on.
func TestOCIConformance(t *testing.T) {
	prereq.Short(t, "the OCI conformance suite")
	goBin := prereq.Tool(t, "go")
	_, host := newMirror(t)
	bin := filepath.Join(t.TempDir(), "conformance")
	if out, err := exec.Command(goBin, "build", "-o", bin, "github.com/opencontainers/distribution-spec/conformance").CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite: %v\n%s", err, out)
	}
	results := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = results
	cmd.Env = append(os.Environ(),
		"OCI_ROOT_URL=http://"+host,
		"OCI_NAMESPACE=conformance/repo1",
		"OCI_CROSSMOUNT_NAMESPACE=conformance/repo2",
		"OCI_TEST_PULL=1",
		"OCI_TEST_PUSH=1",
		"OCI_TEST_CONTENT_DISCOVERY=1",
		"OCI_REGISTRY="+host,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_RESULTS_DIR="+results,
		"OCI_API_PULL=true",
		"OCI_API_PUSH=true",
		"OCI_API_TAGS_LIST=true",
		"OCI_API_REFERRER=false", // no referrers API yet
		"OCI_DATA_SHA512=false",  // the content store holds sha256 blobs only
		// Non-distributable layers (deprecated in image-spec 1.1) are
		// not in the store, and the store keeps images whole.
		"OCI_DATA_NONDISTRIBUTABLE=false",
		"OCI_LOG=warn",
	)
	out, err := cmd.CombinedOutput()
	n := func(result string) int {
		return len(regexp.MustCompile(`(?m)^  [^\n]*:\s+`+result+`$`).FindAll(out, -1))
	}
	t.Logf("conformance: %d pass, %d fail, %d disabled", n("Pass"), n("Fail"), n("Disabled"))
	if f := os.Getenv("FERRY_CONFORMANCE_OUT"); f != "" {
		_ = os.WriteFile(f, out, 0o644)
	}
	if err != nil || n("Pass") == 0 {
		if len(out) > 8000 {
			out = out[len(out)-8000:]
		}
		t.Fatalf("conformance suite failed: %v\n%s", err, out)
	}
}
