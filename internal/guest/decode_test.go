package guest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// stdDecode is the reference: encoding/json as ParseConfig used it.
func stdDecode(data []byte) (*RunConfig, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c RunConfig
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errSyntax
	}
	if _, err := dec.Token(); err == nil {
		return nil, errSyntax
	}
	return &c, nil
}

// fill sets every field reachable from v to a non-zero value, so that a
// field the decoder does not know makes TestDecodeEveryField fail.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strings.Repeat("é\"\\", *n%3))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n) << 40)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), n)
		fill(s.Index(1), n)
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(v.Field(i), n)
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func TestDecodeEveryField(t *testing.T) {
	var c RunConfig
	n := 0
	fill(reflect.ValueOf(&c).Elem(), &n)
	data, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var got RunConfig
	if err := decodeConfig(data, &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(&got, &c) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, c)
	}
	// Indented, as Marshal writes it.
	ind, _ := json.MarshalIndent(&c, "", "  ")
	got = RunConfig{}
	if err := decodeConfig(ind, &got); err != nil || !reflect.DeepEqual(&got, &c) {
		t.Fatalf("indented: %v", err)
	}
}

// TestDecodeMatchesJSON: edge cases decode as encoding/json decodes them,
// or fail where it fails.
func TestDecodeMatchesJSON(t *testing.T) {
	for _, in := range []string{
		`{}`, ` { } `, `{"version":1}`, `{"version":-0}`, `{"version":1.0}`, `{"version":1e2}`,
		`{"version":99999999999999999999}`, `{"version":"1"}`, `{"version":null}`, `{"version":01}`,
		`{"version":-}`, `{"version":1.}`, `{"version":1e}`, `{"version":true}`,
		`{"rlimits":{"nofile":-1}}`, `{"rlimits":{"nofile":18446744073709551615}}`, `{"rlimits":null}`,
		`{"rlimits":{}}`, `{"rlimits":{"nofile":1},"rlimits":{}}`,
		`{"id":"a\u00e9\ud83d\ude00\ud800x\"\\\/\b\f\n\r\t"}`, `{"id":"\ud800\ud800"}`, `{"id":"\u12"}`,
		"{\"id\":\"bad \xff utf8 \xe2\x82\"}", "{\"id\":\"ctl \x01\"}", `{"id":"\q"}`, `{"id":"open`,
		`{"image":{"cmd":[]}}`, `{"image":{"cmd":null}}`, `{"image":{"cmd":["a",null,"b"]}}`,
		`{"image":null}`, `{"image":[]}`, `{"image":{"cmd":["a"]},"image":{"env":["K=V"]}}`,
		`{"override":{"entrypoint":[]}}`, `{"override":{"entrypoint":null,"cmd":["x"]}}`,
		`{"hosts":[null,{"ip":"1.2.3.4","names":["a"]}]}`, `{"hosts":[{"ip":1}]}`, `{"dns":{}}`,
		`{"dns":{"search":["a"]},"dns":{"options":["b"]}}`, `{"dns":null}`,
		`{"network":[{"mtu":1500,"name":"eth0"}]}`, `{"root":{"mode":"overlay","wait_ms":5}}`,
		`{"mounts":[{"read_only":true,"options":["size=1m"]}]}`, `{"mounts":[{"read_only":1}]}`,
		`{"tty":true,"attach":false,"debug":null}`, `{"power":{"method":"halt","exit_grace_ms":3}}`,
		`{"cgroup_version":"v1"}`, `{"unknown":1}`, `{"image":{"nope":1}}`, `{} {}`, `{}x`, `[]`, `null`,
		`{"version":1,}`, `{,}`, `{"version" 1}`, `{"a":1`, ``, `   `, "{\"version\":1}\n",
	} {
		want, werr := stdDecode([]byte(in))
		var got RunConfig
		gerr := decodeConfig([]byte(in), &got)
		if in == `null` { // encoding/json accepts a bare null as "no change"
			if gerr == nil {
				t.Errorf("%s: accepted", in)
			}
			continue
		}
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: encoding/json err %v, decodeConfig err %v", in, werr, gerr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(&got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", in, got, *want)
		}
	}
	// The one deliberate difference: keys match case-sensitively.
	if _, err := stdDecode([]byte(`{"Version":1}`)); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	var c RunConfig
	if err := decodeConfig([]byte(`{"Version":1}`), &c); err == nil || !strings.Contains(err.Error(), `unknown field "Version"`) {
		t.Errorf("case-folded key: %v", err)
	}
}

// FuzzDecodeConfig holds decodeConfig to encoding/json: what it accepts,
// encoding/json decodes to the same value; what encoding/json accepts, it
// decodes the same once re-encoded canonically (keys in their own case).
func FuzzDecodeConfig(f *testing.F) {
	b, _ := validConfig().Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1,"image":{"cmd":["x"]},"root":{"mode":"single","device":"/dev/vda"}}`))
	f.Add([]byte(`{"id":"\ud83d\ude00","override":{"entrypoint":[]},"dns":null,"hosts":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got RunConfig
		gerr := decodeConfig(data, &got)
		want, werr := stdDecode(data)
		if gerr == nil {
			if werr != nil {
				t.Fatalf("decodeConfig accepts what encoding/json rejects (%v):\n%q", werr, data)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("differ on %q:\n got %+v\nwant %+v", data, got, *want)
			}
			return
		}
		if werr != nil {
			return
		}
		// (omitempty drops empty slices, so compare the canonical form's
		// decodings with each other.)
		canon, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		want, werr = stdDecode(canon)
		var again RunConfig
		if err := decodeConfig(canon, &again); err != nil || werr != nil || !reflect.DeepEqual(&again, want) {
			t.Fatalf("canonical %q: %v (encoding/json: %v)", canon, err, werr)
		}
	})
}
