// Package api is ferry's daemon API: JSON over HTTP on a unix socket (and on
// TCP with a bearer token), shaped like Fly's Machines API where it fits.
//
// The package holds the framework (server.go: routing, errors, auth, JSON
// decoding, NDJSON streams, connection upgrades; client.go: the typed client's
// plumbing) and one file per resource (images.go, machines.go, …), each
// defining the narrow service interface its handlers need, a Register
// function for the server side, and the typed client methods. The Machines
// API's request and reply shapes live in internal/api/types, shared with
// the CLI; the image and rootfs APIs still reply with internal/image's and
// internal/rootfs's own exported types.
//
// Errors travel as {"error": "...", "code": "not_found"} with the status from
// internal/errdefs; the client turns them back into errors that satisfy
// errors.Is(err, errdefs.ErrNotFound).
package api
