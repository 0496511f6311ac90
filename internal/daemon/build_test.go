package daemon

import (
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/api"
)

// TestBuildRequestCarriesEveryField fails when a field is added to the
// wire request and not carried into the build.
func TestBuildRequestCarriesEveryField(t *testing.T) {
	var req api.BuildRequest
	v := reflect.ValueOf(&req).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.Uint8 {
				f.SetBytes([]byte("x"))
			} else {
				f.Set(reflect.ValueOf([]string{"x"}))
			}
		case reflect.Map:
			m := reflect.MakeMap(f.Type())
			m.SetMapIndex(reflect.ValueOf("k"), reflect.New(f.Type().Elem()).Elem())
			f.Set(m)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
			f.Elem().Field(0).SetString("user")
		default:
			t.Fatalf("field %s: kind %s not handled by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	req.Platform = "linux/arm64"
	got, err := buildRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	out := reflect.ValueOf(got)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		f := out.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("build.Request has no field %s", name)
			continue
		}
		if f.IsZero() {
			t.Errorf("field %s is not carried into the build", name)
		}
	}
}
