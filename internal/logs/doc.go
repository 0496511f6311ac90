// Package logs is a machine's log store: the file its console writer keeps
// (internal/vmm runs Copy in a process of its own, so the log fills while no
// daemon runs) and the entries the daemon reads back from it.
//
// Each line of the store is one entry, in the CRI logging format
// Kubernetes' kubelet writes:
//
//	2026-12-03T22:13:01.123456789Z stdout F hello
//
// the time the writer received it (UTC, RFC 3339 with nanoseconds), the
// stream (stdout and stderr from ferry-init's console records, console for
// an untagged console line: kernel messages, init's own lines, a TTY's or
// an older ferry-init's output), F for a whole line or P for a piece
// without a newline of its own, and the data. The writer stamps each entry
// as it arrives, so times are when the guest wrote the line, as Docker's
// json-file driver keeps them; they survive daemon restarts with the file.
// No file grows past its cap: the writer rotates by rename (path → path.1 →
// … → path.keep) before an entry would take it over.
//
// It owns the store's format and its writer; which lines a reader shows
// (the platform's are left out, following, tail, since) is
// internal/machine's.
package logs
