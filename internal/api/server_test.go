package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// serve starts s on a fresh unix socket and returns a client for it.
func serve(t *testing.T, s *Server, token string) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx, l, token); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := NewClient("unix://"+sock, token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type payload struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func testServer() *Server {
	s := NewServer(nil)
	s.Handle("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) error {
		var p payload
		if err := DecodeJSON(r, &p); err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, p)
	})
	s.Handle("GET /v1/things/{name}", func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("thing %q: %w", r.PathValue("name"), errdefs.ErrNotFound)
	})
	s.Handle("GET /v1/stream", func(w http.ResponseWriter, r *http.Request) error {
		st := NewStream(w)
		for i := range 3 {
			if err := st.Send(payload{Count: i}); err != nil {
				return err
			}
		}
		return st.Fail(fmt.Errorf("disk full: %w", errdefs.ErrUnavailable))
	})
	s.Handle("POST /v1/upgrade", func(w http.ResponseWriter, r *http.Request) error {
		conn, brw, err := Upgrade(w, r)
		if err != nil {
			return err
		}
		defer conn.Close()
		b, _ := io.ReadAll(brw)
		_, _ = conn.Write([]byte(strings.ToUpper(string(b))))
		return nil
	})
	return s
}

func TestRoundTripAndErrors(t *testing.T) {
	c := serve(t, testServer(), "")
	ctx := context.Background()

	var out payload
	if err := c.Do(ctx, "POST", "/v1/echo", payload{Name: "a", Count: 2}, &out); err != nil || out != (payload{"a", 2}) {
		t.Fatalf("echo = %+v, %v", out, err)
	}
	err := c.Do(ctx, "GET", "/v1/things/nope", nil, nil)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), `thing "nope"`) {
		t.Fatalf("want not-found naming the thing, got %v", err)
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("want *Error with 404, got %#v", err)
	}
}

func TestDecodeJSONNamesField(t *testing.T) {
	c := serve(t, testServer(), "")
	for name, body := range map[string]string{
		"wrong type":    `{"name":"a","count":"x"}`,
		"unknown field": `{"name":"a","bogus":1}`,
		"malformed":     `{"name":`,
	} {
		t.Run(name, func(t *testing.T) {
			err := c.Do(context.Background(), "POST", "/v1/echo", strings.NewReader(body), nil)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("want invalid argument, got %v", err)
			}
			if name != "malformed" && !strings.Contains(err.Error(), map[string]string{"wrong type": "count", "unknown field": "bogus"}[name]) {
				t.Fatalf("error does not name the field: %v", err)
			}
		})
	}
}

func TestTokenRequired(t *testing.T) {
	s := testServer()
	good := serve(t, s, "s3cret")
	if err := good.Do(context.Background(), "GET", "/v1/_ping", nil, nil); err != nil {
		t.Fatalf("with token: %v", err)
	}
	bad := *good
	bad.token = "wrong"
	if err := bad.Do(context.Background(), "GET", "/v1/_ping", nil, nil); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("wrong token: want unauthorized, got %v", err)
	}
	bad.token = ""
	if err := bad.Do(context.Background(), "GET", "/v1/_ping", nil, nil); !errors.Is(err, errdefs.ErrUnauthorized) {
		t.Fatalf("no token: want unauthorized, got %v", err)
	}
}

func TestStreamEndsWithError(t *testing.T) {
	c := serve(t, testServer(), "")
	var got []int
	err := c.Stream(context.Background(), "GET", "/v1/stream", nil, func(raw json.RawMessage) error {
		var p payload
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		got = append(got, p.Count)
		return nil
	})
	if len(got) != 3 || got[2] != 2 {
		t.Fatalf("values = %v", got)
	}
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("want the stream's final error, got %v", err)
	}
}

func TestUpgrade(t *testing.T) {
	c := serve(t, testServer(), "")
	conn, err := c.Upgrade(context.Background(), "POST", "/v1/upgrade", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = conn.(interface{ CloseWrite() error }).CloseWrite()
	b, _ := io.ReadAll(conn)
	if string(b) != "HELLO" {
		t.Fatalf("got %q", b)
	}
}

func TestDaemonDownIsUnavailable(t *testing.T) {
	c, err := NewClient("unix://"+filepath.Join(t.TempDir(), "none.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Do(context.Background(), "GET", "/v1/_ping", nil, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "ferry daemon") {
		t.Fatalf("want unavailable naming the daemon, got %v", err)
	}
}
