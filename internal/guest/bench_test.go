package guest

import "testing"

func BenchmarkParseConfig(b *testing.B) {
	data, err := validConfig().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ParseConfig(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseConfigJSON is the same with encoding/json's decoder, as
// ParseConfig had it (for comparison).
func BenchmarkParseConfigJSON(b *testing.B) {
	data, err := validConfig().Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c, err := stdDecode(data)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
