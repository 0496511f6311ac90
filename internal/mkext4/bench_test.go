package mkext4

import (
	"os"
	"testing"
)

// BenchmarkFormat8GiB formats a sparse 8 GiB file, over and over, fsync
// included.
func BenchmarkFormat8GiB(b *testing.B) {
	const size = 8 << 30
	f, err := os.OpenFile(sparseFile(b, size), os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rec := &recorder{w: f}
	for b.Loop() {
		if err := Format(rec, size, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rec.bytes)/float64(b.N), "written-B/op")
}
