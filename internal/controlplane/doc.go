// Package controlplane is ferry's multi-host control plane (docs/scale-out.md):
// a Postgres database that is the source of truth for hosts and their
// leases, served over HTTP by `ferry controlplane serve` (any number of
// stateless replicas on one database), and the Agent a host's daemon runs
// (`ferry daemon --join URL`) to register its capacity and renew its lease.
//
// A lease carries a generation: registering (again) bumps it, and a
// renewal names the generation it holds, so a host whose lease expired, or
// was taken over by a newer registration, learns it has lost the lease
// instead of silently extending it (the fencing the design rests on).
//
// Placement (place.go) records a machine's desired state and chooses its
// host in one transaction over the locked live hosts: a machine with a
// volume goes to the volume's home, others to the host with the most
// memory free. Hosts do not yet converge to what is placed on them, and
// cross-host networking is designed in docs/scale-out.md, not built.
package controlplane
