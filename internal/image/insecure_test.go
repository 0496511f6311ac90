package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferryvm/ferry/internal/errdefs"
)

func TestInsecureRegistryMustBeAllowedByTheDaemon(t *testing.T) {
	s, _ := newStore(t, WithInsecureRegistries("reg.internal:5000"))
	for _, ok := range [][]string{nil, {"reg.internal:5000"}, {"localhost:5000"}, {"127.0.0.1:9999"}, {"[::1]:5000"}} {
		if err := s.CheckInsecure("x", ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	err := s.CheckInsecure("other.example:5000/app", []string{"other.example:5000"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "ferry daemon --insecure-registry other.example:5000") {
		t.Fatalf("want advice to restart the daemon, got %v", err)
	}
}
