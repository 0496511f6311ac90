package initd

import (
	"strings"
)

// DefaultPath is PATH when the image sets none (Docker's default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// BuildEnv merges the image environment with the run's overrides (a later
// KEY replaces an earlier one in place) and adds PATH, HOSTNAME, HOME and,
// with a tty, TERM when they are missing.
func BuildEnv(image, override []string, home, hostname string, tty bool) []string {
	var env []string
	idx := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			env[i] = kv
			return
		}
		idx[k] = len(env)
		env = append(env, kv)
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range override {
		set(kv)
	}
	add := func(k, v string) {
		if _, ok := idx[k]; !ok && v != "" {
			set(k + "=" + v)
		}
	}
	add("PATH", DefaultPath)
	add("HOSTNAME", hostname)
	add("HOME", home)
	if tty {
		add("TERM", "xterm")
	}
	return env
}

// lookupEnv returns KEY's value in env.
func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}
