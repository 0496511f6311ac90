package dockerfile

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Env is an ordered KEY=VALUE list, the shape of an image config's Env and
// of an ARG scope. It implements BuildKit's shell.EnvGetter. A declared
// key without a value (ARG NAME with no default and no build arg) is
// listed but not set.
type Env struct {
	keys []string
	vals map[string]string
	set  map[string]bool
}

var _ shell.EnvGetter = (*Env)(nil)

// NewEnv returns an Env holding list (KEY=VALUE entries, later ones win).
func NewEnv(list []string) *Env {
	e := &Env{vals: map[string]string{}, set: map[string]bool{}}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		e.Set(k, v)
	}
	return e
}

// Get returns the value of k, and whether it is set.
func (e *Env) Get(k string) (string, bool) {
	if e == nil || !e.set[k] {
		return "", false
	}
	return e.vals[k], true
}

// Keys lists the keys that are set, in order.
func (e *Env) Keys() []string {
	if e == nil {
		return nil
	}
	var out []string
	for _, k := range e.keys {
		if e.set[k] {
			out = append(out, k)
		}
	}
	return out
}

// Set sets k to v, keeping k's position when it exists.
func (e *Env) Set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
	e.set[k] = true
}

func (e *Env) declare(k string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
		e.vals[k] = ""
	}
}

func (e *Env) has(k string) bool {
	_, ok := e.vals[k]
	return ok
}

// List returns the set entries as KEY=VALUE, in order.
func (e *Env) List() []string {
	var out []string
	for _, k := range e.Keys() {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// Clone returns an independent copy.
func (e *Env) Clone() *Env {
	c := &Env{keys: append([]string(nil), e.keys...), vals: map[string]string{}, set: map[string]bool{}}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	for k, v := range e.set {
		c.set[k] = v
	}
	return c
}

// merged returns a getter that looks in first, then in second.
func merged(first, second *Env) *Env {
	out := second.Clone()
	for _, k := range first.Keys() {
		v, _ := first.Get(k)
		out.Set(k, v)
	}
	return out
}

// platformArgs are BuildKit's automatic ARGs for a build on and for p.
func platformArgs(p v1.Platform, target string) *Env {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = "amd64"
	}
	if target == "" {
		target = "default"
	}
	plat := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		plat += "/" + p.Variant
	}
	e := NewEnv(nil)
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", plat}, {"BUILDOS", p.OS}, {"BUILDOSVERSION", p.OSVersion},
		{"BUILDARCH", p.Architecture}, {"BUILDVARIANT", p.Variant},
		{"TARGETPLATFORM", plat}, {"TARGETOS", p.OS}, {"TARGETOSVERSION", p.OSVersion},
		{"TARGETARCH", p.Architecture}, {"TARGETVARIANT", p.Variant}, {"TARGETSTAGE", target},
	} {
		e.Set(kv[0], kv[1])
	}
	return e
}
