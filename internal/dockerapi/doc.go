// Package dockerapi serves the Docker Engine API (versions MinAPIVersion to
// MaxAPIVersion) on ferry's own services, so that the docker CLI, docker
// compose and testcontainers drive micro-VMs unchanged: a container is a
// machine, an image is an image of ferry's cache.
//
// It owns the translation and nothing else: Docker's request types (from
// github.com/moby/moby/api) become machine configs and calls on the machine
// manager, the image store, the networks and the builder that the Machines
// API uses too, and what they answer becomes Docker's response types. No
// behaviour is implemented twice: where Docker needs something a service
// lacks, the service gains it.
//
// One world: a container's 64-hex ID is its machine's ID followed by a hash
// of it (so `docker ps` and `ferry ps` show the same short IDs and either
// form resolves), its labels are the machine's metadata, and its state is
// the machine's. Options a VM cannot honour (privileged, capabilities,
// devices, host namespaces) are refused with a 400 that says what ferry does
// instead, never ignored. docs/docker-api.md lists what is served.
package dockerapi
