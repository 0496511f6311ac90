// Package controlplane is ferry's multi-host control plane (docs/scale-out.md):
// a Postgres database that is the source of truth for hosts and their
// leases, served over HTTP by `ferry controlplane serve` (any number of
// stateless replicas on one database), and the Agent a host's daemon runs
// (`ferry daemon --join URL`) to register its capacity, renew its lease
// and converge its machines to the desired set placed on it (converge.go).
//
// A lease carries a generation: registering (again) bumps it, and a
// renewal names the generation it holds, so a host whose lease expired, or
// was taken over by a newer registration, learns it has lost the lease
// instead of silently extending it (the fencing the design rests on).
//
// Placement (place.go) records a machine's desired state and chooses its
// host in one transaction over the locked live hosts: a machine with a
// volume goes to the volume's home, others to the host with the most
// memory free. The control plane also serves the Machines API across hosts
// (machines_api.go): creates are placed then created on their host, lists
// gather every host's, and other verbs are proxied to the owning host.
// Cross-host networks (overlay.go) give each network a VNI and each host
// a range of its subnet, and hand every host its peers (VXLAN, 6PN).
package controlplane
