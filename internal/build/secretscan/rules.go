package secretscan

import (
	"math"
	"path"
	"regexp"
	"strings"
)

const (
	sniffBytes   = 64 << 10
	maxSniffFile = 1 << 20
)

// names are files whose name alone makes them secret.
var names = map[string]string{
	"id_rsa": "SSH private key", "id_dsa": "SSH private key", "id_ecdsa": "SSH private key", "id_ed25519": "SSH private key",
	".env": "environment file", ".netrc": "netrc credentials", ".npmrc": "npm credentials", ".pypirc": "PyPI credentials",
	".git-credentials": "git credentials", ".pgpass": "PostgreSQL password file", "credentials.json": "cloud credentials",
	"secrets.json": "secrets file", "secrets.yaml": "secrets file", "secrets.yml": "secrets file",
}

// pathSuffixes are credential files known by their directory too.
var pathSuffixes = map[string]string{
	".aws/credentials":                     "AWS credentials",
	".docker/config.json":                  "registry credentials",
	".kube/config":                         "Kubernetes credentials",
	".config/gcloud/credentials.db":        "Google Cloud credentials",
	".azure/accessTokens.json":             "Azure credentials",
	"application_default_credentials.json": "Google Cloud credentials",
}

func byName(p string) string {
	for suf, why := range pathSuffixes {
		if p == suf || strings.HasSuffix(p, "/"+suf) {
			return why
		}
	}
	base := path.Base(p)
	if why, ok := names[base]; ok {
		return why
	}
	if strings.HasPrefix(base, ".env.") && !strings.HasSuffix(base, ".example") && !strings.HasSuffix(base, ".sample") {
		return "environment file"
	}
	return ""
}

// wantsContent says which files are worth reading: text-like names and
// key/certificate extensions, not binaries and libraries.
func wantsContent(p string) bool {
	switch path.Ext(p) {
	case ".so", ".a", ".o", ".gz", ".zst", ".xz", ".png", ".jpg", ".gif", ".pyc", ".mo", ".wasm", ".jar", ".zip", ".bin":
		return false
	}
	return !strings.HasPrefix(p, "usr/share/") && !strings.HasPrefix(p, "usr/lib/") && !strings.HasPrefix(p, "lib/")
}

var contentRules = []struct {
	re  *regexp.Regexp
	why string
}{
	{regexp.MustCompile(`-----BEGIN ((RSA|EC|DSA|OPENSSH|ENCRYPTED) )?PRIVATE KEY-----`), "private key"},
	{regexp.MustCompile(`\bAKIA[0-9A-Z]{16}\b`), "AWS access key"},
	{regexp.MustCompile(`(?i)aws_secret_access_key\s*[=:]`), "AWS secret key"},
	{regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}\b`), "GitHub token"},
	{regexp.MustCompile(`\bxox[baprs]-[A-Za-z0-9-]{10,}`), "Slack token"},
	{regexp.MustCompile(`"type"\s*:\s*"service_account"`), "Google service account key"},
}

// assignment finds "secret-ish name = value" pairs; the value must look
// random to count.
var assignment = regexp.MustCompile(`(?i)\b[a-z0-9_.-]*(secret|token|passw(or)?d|api[_-]?key|private[_-]?key|access[_-]?key)[a-z0-9_.-]*["']?\s*[:=]\s*["']?([A-Za-z0-9+/_=.\-]{20,})`)

func byContent(b []byte) string {
	if isBinary(b) {
		return ""
	}
	for _, r := range contentRules {
		if r.re.Match(b) {
			return r.why
		}
	}
	for _, m := range assignment.FindAllSubmatch(b, 20) {
		if entropy(m[3]) >= 4.0 {
			return "high-entropy token assigned to " + strings.ToLower(string(m[1]))
		}
	}
	return ""
}

func isBinary(b []byte) bool {
	n := len(b)
	if n > 8000 {
		n = 8000
	}
	for _, c := range b[:n] {
		if c == 0 {
			return true
		}
	}
	return false
}

// entropy is the Shannon entropy of b in bits per byte.
func entropy(b []byte) float64 {
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	h := 0.0
	for _, n := range counts {
		if n == 0 {
			continue
		}
		p := float64(n) / float64(len(b))
		h -= p * math.Log2(p)
	}
	return h
}
