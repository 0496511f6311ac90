package machine

import (
	"errors"
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/api/types"
	"github.com/ferryvm/ferry/internal/errdefs"
	"github.com/ferryvm/ferry/internal/guest"
)

// fillFields sets every field of the struct v points to a non-zero value.
func fillFields(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64, reflect.Uint16:
			if f.CanInt() {
				f.SetInt(7)
			} else {
				f.SetUint(7)
			}
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
			if f.Type().Elem().Kind() == reflect.String {
				f.Index(0).SetString("x")
			}
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		default:
			t.Fatalf("fillFields: field %s of kind %s: teach the test", rv.Type().Field(i).Name, f.Kind())
		}
	}
}

// zeroFields names the fields of the struct v that are zero.
func zeroFields(v any) []string {
	rv := reflect.ValueOf(v)
	var out []string
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() {
			out = append(out, rv.Type().Field(i).Name)
		}
	}
	return out
}

// TestGuestExecCarriesEveryField fails when a field is added to the API's
// ExecRequest or to the protocol's and guestExec does not carry it.
func TestGuestExecCarriesEveryField(t *testing.T) {
	var r types.ExecRequest
	fillFields(t, &r)
	g := guestExec(r)
	if z := zeroFields(g); len(z) != 0 {
		t.Errorf("guest.ExecRequest fields %v not set from a full ExecRequest: carry them in guestExec", z)
	}
	if a, b := reflect.TypeFor[types.ExecRequest]().NumField(), reflect.TypeFor[guest.ExecRequest]().NumField(); a != b {
		t.Errorf("types.ExecRequest has %d fields, guest.ExecRequest %d: carry the new one in guestExec", a, b)
	}
}

// TestExitFromGuestCarriesEveryField fails when init's exit status gains a
// field that the machine's Exit neither carries nor deliberately leaves.
func TestExitFromGuestCarriesEveryField(t *testing.T) {
	left := map[string]string{"Failure": "a failed start is the start's error, not an exit field"}
	var s guest.ExitStatus
	fillFields(t, &s)
	e := exitFromGuest(s)
	carried := map[string]bool{"Code": e.ExitCode == s.Code, "Signal": e.Signal == s.Signal, "OOMKilled": e.OOMKilled}
	for i := range reflect.TypeFor[guest.ExitStatus]().NumField() {
		name := reflect.TypeFor[guest.ExitStatus]().Field(i).Name
		if _, ok := left[name]; ok {
			continue
		}
		if !carried[name] {
			t.Errorf("guest.ExitStatus.%s is not carried into types.Exit by exitFromGuest", name)
		}
	}
	if e.ExitedAt.IsZero() {
		t.Error("exit without a time")
	}
}

// TestExecErrorKinds: what init refuses says why; a broken channel is the
// machine being unavailable, never an invalid argument.
func TestExecErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind error
	}{
		{&guest.RemoteError{Reason: guest.ReasonNotFound, Message: "x: not found"}, errdefs.ErrNotFound},
		{&guest.RemoteError{Reason: guest.ReasonUser, Message: "no user bob"}, errdefs.ErrInvalidArgument},
		{&guest.RemoteError{Message: "an attach is already served"}, errdefs.ErrConflict},
		{errors.New("control exec: connection reset"), errdefs.ErrUnavailable},
	} {
		if err := execError("x", tc.err); !errors.Is(err, tc.kind) || errors.Is(err, errdefs.ErrInvalidArgument) && tc.kind != errdefs.ErrInvalidArgument {
			t.Errorf("execError(%v) = %v, want %v", tc.err, err, tc.kind)
		}
	}
	if err := failureError("x", &guest.Failure{Reason: guest.ReasonNotFound, Message: "x: not found"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("failureError(not found) = %v", err)
	}
}
