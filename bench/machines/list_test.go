package machines

import (
	"context"
	"fmt"
	"testing"

	"github.com/ferryvm/ferry/internal/api"
	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/testimage"
)

// withMachines returns a daemon holding n created (not started) machines of
// the busybox image: the "most stopped" case of ps/inspect.
func withMachines(b *testing.B, n int) (*api.Client, []string) {
	c := startDaemon(b)
	img, err := testimage.Busybox()
	if err != nil {
		b.Fatal(err)
	}
	load(b, c, "busybox:bench", img)
	ids := make([]string, 0, n)
	for i := range n {
		m, err := c.CreateMachine(context.Background(), "bench", types.CreateRequest{
			Name: fmt.Sprintf("m%03d", i), SkipLaunch: true, Config: types.Config{Image: "busybox:bench"}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return c, ids
}

// BenchmarkList200 is `ferry ps -a` with 200 machines (target ≤ 50 ms).
func BenchmarkList200(b *testing.B) {
	c, _ := withMachines(b, 200)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		list, err := c.ListMachines(ctx, "bench", true)
		if err != nil || len(list) != 200 {
			b.Fatalf("list: %d, %v", len(list), err)
		}
	}
}

// BenchmarkInspect200 is `ferry inspect NAME` with 200 machines (target ≤ 5 ms).
func BenchmarkInspect200(b *testing.B) {
	c, _ := withMachines(b, 200)
	ctx := context.Background()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := c.GetMachine(ctx, "bench", fmt.Sprintf("m%03d", i%200)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCreateSkipLaunch is the daemon's create path without a boot:
// resolve the cached image, record the machine, prepare its scratch disk.
func BenchmarkCreateSkipLaunch(b *testing.B) {
	c, _ := withMachines(b, 0)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.CreateMachine(ctx, "bench", types.CreateRequest{SkipLaunch: true, Config: types.Config{Image: "busybox:bench"}}); err != nil {
			b.Fatal(err)
		}
	}
}
