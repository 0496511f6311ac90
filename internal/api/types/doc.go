// Package types holds the shapes of ferry's Machines API: the JSON values
// the daemon answers with and the requests it takes (docs/api.md is the
// reference). It is data only (no behaviour beyond small accessors) and
// imports nothing of ferry's, so the server (internal/api, over
// internal/machine), the typed client and the CLI share one definition.
//
// These are wire types. internal/machine keeps its own model of a machine
// (machine.Machine, with the network attachment and image config as the
// packages that own them define them) and its own versioned storage
// records; each converts to and from these in one function, tested so a
// field cannot be dropped on the way. What a user writes — a machine's
// Config, an ExecRequest — is the same concept on every layer, so the
// machine package uses these types for it directly.
package types
