package dockerapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestVersionsAndErrorBody(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	cases := []struct {
		method, path string
		status       int
		message      string
	}{
		{"GET", "/_ping", 200, ""},
		{"HEAD", "/v1.44/_ping", 200, ""},
		{"GET", "/v1.50/_ping", 200, ""},
		{"GET", "/v1.43/_ping", 400, "client version 1.43 is too old. Minimum supported API version is 1.44"},
		{"GET", "/v1.58/_ping", 400, "client version 1.58 is too new"},
		{"GET", "/v1.50/swarm", 404, "page not found"},
		{"GET", "/v1.50/exec/nope/json", 404, "No such exec instance: nope"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(body.Message, tc.message) {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, body.Message, tc.status, tc.message)
		}
		if resp.Header.Get("Api-Version") != MaxAPIVersion {
			t.Errorf("%s: Api-Version %q", tc.path, resp.Header.Get("Api-Version"))
		}
		if tc.status == 200 && resp.Header.Get("Builder-Version") != "1" {
			t.Errorf("%s: Builder-Version %q, want 1 (the classic builder)", tc.path, resp.Header.Get("Builder-Version"))
		}
	}
}
