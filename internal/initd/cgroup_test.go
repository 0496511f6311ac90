package initd

import "testing"

func TestAppMemoryMax(t *testing.T) {
	const mb = 1 << 20
	for _, tc := range []struct{ total, want uint64 }{
		{100 * mb, 76 * mb},      // 24 MiB kept
		{40 * mb, 20 * mb},       // tiny guest: half
		{1024 * mb, 896 * mb},    // an eighth
		{16384 * mb, 16128 * mb}, // at most 256 MiB kept
	} {
		if got := AppMemoryMax(tc.total); got != tc.want {
			t.Errorf("AppMemoryMax(%d MiB) = %d MiB, want %d MiB", tc.total/mb, got/mb, tc.want/mb)
		}
	}
	if n := counter([]byte("low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"), "oom_kill"); n != 1 {
		t.Errorf("counter = %d", n)
	}
}
