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
