// Package errdefs defines the handful of error kinds ferry uses everywhere
// (not found, already exists, invalid argument, conflict, unavailable,
// unauthorized, timeout, not booted) and maps them to HTTP status codes and CLI exit codes at the
// edges. Packages wrap these with context:
//
//	return fmt.Errorf("pull %s: %w", ref, errdefs.ErrNotFound)
//
// and callers test them with errors.Is.
package errdefs

import (
	"errors"
	"net/http"
)

// The error kinds. Wrap them; never compare with ==.
var (
	ErrNotFound        = errors.New("not found")
	ErrAlreadyExists   = errors.New("already exists")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrConflict        = errors.New("conflict")
	ErrUnavailable     = errors.New("unavailable")
	ErrUnauthorized    = errors.New("unauthorized")
	// ErrTimeout: a bounded wait ended before what it waited for happened
	// (nothing failed: ask again).
	ErrTimeout = errors.New("timed out")
	// ErrNotBooted: the machine's init refused an exec because it has not
	// started the entrypoint yet (still booting: ask again).
	ErrNotBooted = errors.New("not booted")
)

// kinds lists every kind with its stable API code and HTTP status.
var kinds = []struct {
	err    error
	code   string
	status int
}{
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrAlreadyExists, "already_exists", http.StatusConflict},
	{ErrInvalidArgument, "invalid_argument", http.StatusBadRequest},
	{ErrConflict, "conflict", http.StatusConflict},
	{ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
	{ErrUnauthorized, "unauthorized", http.StatusUnauthorized},
	{ErrTimeout, "timeout", http.StatusRequestTimeout},
	{ErrNotBooted, "not_booted", http.StatusConflict},
}

// Code returns the stable API code for err ("internal" when err is of no
// known kind).
func Code(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.code
		}
	}
	return "internal"
}

// HTTPStatus returns the HTTP status for err.
func HTTPStatus(err error) int {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status
		}
	}
	return http.StatusInternalServerError
}

// FromCode returns the kind for a stable API code, or nil when unknown.
func FromCode(code string) error {
	for _, k := range kinds {
		if k.code == code {
			return k.err
		}
	}
	return nil
}
