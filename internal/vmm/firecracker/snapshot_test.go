package firecracker

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The snapshot requests ferry sends are valid bodies of Firecracker's API
// (the swagger's definitions, objects closed as Firecracker reads them):
// Firecracker cannot run here, so the schema is what they are tested on.
func TestSnapshotRequestsValidateAgainstSwagger(t *testing.T) {
	s := Snapshot{State: "/tmpl/state", Memory: "/tmpl/memory"}
	for _, d := range []*Driver{New(), New(WithJailer(Jailer{}))} {
		load, err := d.LoadRequest(testSpec(), s)
		if err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]any{
			"SnapshotCreateParams": CreateRequest(s),
			"SnapshotLoadParams":   load,
			"Vm":                   VMState{State: "Paused"},
		} {
			b, _ := json.Marshal(body)
			if err := validateAs(t, name, b); err != nil {
				t.Errorf("%s fails the schema: %v\n%s", name, err, b)
			}
		}
		if load.MemBackend == nil || load.MemBackend.BackendType != "File" || !load.ResumeVM {
			t.Errorf("load request %+v: want a File memory backend (mapped privately), resumed", load)
		}
		if len(load.NetworkOverrides) != 1 || load.NetworkOverrides[0].HostDevName != testSpec().NICs[0].Tap || load.VsockOverride == nil {
			t.Errorf("load request %+v: the machine's own TAP and control socket are not in it", load)
		}
	}
	// The schema catches what Firecracker would refuse.
	for name, doc := range map[string]string{
		"SnapshotLoadParams":   `{"snapshot_path":"/s","mem_backend":{"backend_type":"Mmap","backend_path":"/m"}}`,
		"SnapshotCreateParams": `{"snapshot_path":"/s"}`,
		"Vm":                   `{"state":"Stopped"}`,
	} {
		if err := validateAs(t, name, []byte(doc)); err == nil {
			t.Errorf("%s %s passed the schema", name, doc)
		}
	}
	if _, err := New().LoadRequest(testSpec(), Snapshot{State: "/s"}); err == nil {
		t.Error("a snapshot without its memory file was accepted")
	}
}

// A template runs with an API socket instead of --no-api; a restore has
// no config file (snapshot/load wants a fresh Firecracker).
func TestPlanTemplateAndRestore(t *testing.T) {
	for _, d := range []*Driver{New(), New(WithJailer(Jailer{ChrootBase: "/srv/jail"}))} {
		tp, err := d.PlanTemplate(testSpec())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(tp.Args, "--no-api") || !slices.Contains(tp.Args, "--api-sock") || !slices.Contains(tp.Args, "--config-file") {
			t.Errorf("template argv %q", tp.Args)
		}
		rp, err := d.PlanRestore(testSpec())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(rp.Args, "--config-file") || !slices.Contains(rp.Args, "--api-sock") {
			t.Errorf("restore argv %q", rp.Args)
		}
		for _, f := range rp.Files {
			if strings.HasSuffix(f.Path, ConfigFile) {
				t.Errorf("restore writes a config file %s", f.Path)
			}
		}
	}
}

// SaveSnapshot pauses then snapshots, LoadSnapshot loads, over the API
// socket; Firecracker's fault_message comes back in the error.
func TestSnapshotAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), APISocketName)
	type call struct{ method, path, body string }
	var mu sync.Mutex
	var calls []call
	fail := ""
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, call{r.Method, r.URL.Path, string(b)})
		f := fail
		mu.Unlock()
		if f != "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"fault_message":"` + f + `"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	// The socket appears a little later, as a starting Firecracker's does.
	go func() {
		time.Sleep(50 * time.Millisecond)
		l, err := net.Listen("unix", sock)
		if err != nil {
			return
		}
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := Snapshot{State: "/state", Memory: "/mem"}
	if err := SaveSnapshot(ctx, sock, s); err != nil {
		t.Fatal(err)
	}
	load, _ := New().LoadRequest(testSpec(), s)
	if err := LoadSnapshot(ctx, sock, load); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]call(nil), calls...)
	fail = "Loading a microVM snapshot not allowed after configuring boot-specific resources."
	mu.Unlock()
	want := []string{"PATCH /vm", "PUT /snapshot/create", "PUT /snapshot/load"}
	if len(got) != 3 {
		t.Fatalf("calls %+v", got)
	}
	for i, c := range got {
		if c.method+" "+c.path != want[i] {
			t.Errorf("call %d: %s %s, want %s", i, c.method, c.path, want[i])
		}
		if err := validateAs(t, []string{"Vm", "SnapshotCreateParams", "SnapshotLoadParams"}[i], []byte(c.body)); err != nil {
			t.Errorf("call %d body %s: %v", i, c.body, err)
		}
	}
	if err := LoadSnapshot(ctx, sock, load); err == nil || !strings.Contains(err.Error(), "not allowed after configuring") {
		t.Errorf("a refused load: %v", err)
	}
}
