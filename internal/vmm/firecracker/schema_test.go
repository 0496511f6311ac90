package firecracker

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The config file Firecracker reads is its API's FullVmConfiguration, and
// Firecracker rejects unknown fields (serde deny_unknown_fields), so the
// swagger definitions are compiled as JSON Schema draft 4 with
// additionalProperties:false added to every object that lists properties.

var (
	schemaOnce sync.Once
	fullVM     *jsonschema.Schema
	schemaErr  error
	compilerMu sync.Mutex
	compiler   *jsonschema.Compiler
)

func fullVMSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		raw, err := os.ReadFile("testdata/firecracker-swagger.yaml")
		if err != nil {
			schemaErr = err
			return
		}
		var doc map[string]any
		if err = yaml.Unmarshal(raw, &doc); err != nil {
			schemaErr = err
			return
		}
		defs, _ := doc["definitions"].(map[string]any)
		for _, d := range defs {
			strict(d)
		}
		// Round-trip through JSON so numbers are what the validator expects.
		b, err := json.Marshal(map[string]any{"definitions": defs})
		if err != nil {
			schemaErr = err
			return
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft4)
		if err = c.AddResource("firecracker.json", v); err != nil {
			schemaErr = err
			return
		}
		compiler = c
		fullVM, schemaErr = c.Compile("firecracker.json#/definitions/FullVmConfiguration")
	})
	if schemaErr != nil {
		t.Fatalf("compile firecracker swagger: %v", schemaErr)
	}
	return fullVM
}

// strict closes every object schema that lists its properties.
func strict(v any) {
	x, ok := v.(map[string]any)
	if !ok {
		return
	}
	if props, ok := x["properties"].(map[string]any); ok {
		if _, set := x["additionalProperties"]; !set {
			x["additionalProperties"] = false
		}
		for _, p := range props {
			strict(p)
		}
	}
	strict(x["items"])
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := x[k].([]any); ok {
			for _, c := range l {
				strict(c)
			}
		}
	}
}

// validate checks a config document against the schema.
func validate(t *testing.T, doc []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	return fullVMSchema(t).Validate(v)
}

// validateAs checks an API request body against the swagger definition
// name (closed objects, as Firecracker reads them).
func validateAs(t *testing.T, name string, doc []byte) error {
	t.Helper()
	fullVMSchema(t)
	compilerMu.Lock()
	sch, err := compiler.Compile("firecracker.json#/definitions/" + name)
	compilerMu.Unlock()
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("request is not JSON: %v", err)
	}
	return sch.Validate(v)
}
