package dockerapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferryvm/ferry/internal/api/types"
)

type listMachines struct {
	Machines
	ms []*types.Machine
}

func (l *listMachines) List(string, bool) []*types.Machine { return l.ms }

// BenchmarkListContainers is docker ps -a's request over 200 machines.
func BenchmarkListContainers(b *testing.B) {
	l := &listMachines{}
	for i := range 200 {
		l.ms = append(l.ms, &types.Machine{ID: fmt.Sprintf("%014x", i), Name: fmt.Sprintf("m%d", i), State: types.StateStarted,
			CreatedAt: time.Now(), StartedAt: time.Now(),
			Config: types.Config{Image: "busybox", Metadata: map[string]string{"a": "b"}, Init: types.Init{Cmd: []string{"sleep", "1000"}}}})
	}
	h := New(Config{Machines: l})
	req := httptest.NewRequest(http.MethodGet, "/v1.47/containers/json?all=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
