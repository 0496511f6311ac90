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
// Placement, desired state and cross-host networking are designed in
// docs/scale-out.md and not built yet.
package controlplane
