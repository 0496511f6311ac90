package errdefs

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestCodeRoundTrip(t *testing.T) {
	for _, k := range kinds {
		wrapped := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", k.err))
		if got := Code(wrapped); got != k.code {
			t.Errorf("Code(%v) = %q, want %q", wrapped, got, k.code)
		}
		if got := HTTPStatus(wrapped); got != k.status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", wrapped, got, k.status)
		}
		if got := FromCode(k.code); !errors.Is(got, k.err) {
			t.Errorf("FromCode(%q) = %v, want %v", k.code, got, k.err)
		}
	}
	if Code(fmt.Errorf("boom")) != "internal" || HTTPStatus(fmt.Errorf("boom")) != http.StatusInternalServerError {
		t.Error("unknown errors must map to internal/500")
	}
}
