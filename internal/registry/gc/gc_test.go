package gc

import (
	"strings"
	"testing"
)

func TestReferences(t *testing.T) {
	const a, b, c, s = "sha256:aaaa", "sha256:bbbb", "sha512:cccc", "sha256:5555"
	for name, c := range map[string]struct {
		raw  string
		want string
	}{
		"image":     {`{"config":{"digest":"` + a + `"},"layers":[{"digest":"` + b + `"}],"subject":{"digest":"` + s + `"}}`, a + " " + b},
		"index":     {`{"manifests":[{"digest":"` + a + `"},{"digest":"` + c + `"}]}`, a + " " + c},
		"artifact":  {`{"blobs":[{"digest":"` + b + `"}]}`, b},
		"schema1":   {`{"fsLayers":[{"blobSum":"` + a + `"}]}`, a},
		"not json":  {`{{`, ""},
		"no fields": {`{"schemaVersion":2}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, d := range references([]byte(c.raw)) {
				got = append(got, d.String())
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("references = %v, want %s (a subject never counts)", got, c.want)
			}
		})
	}
}
