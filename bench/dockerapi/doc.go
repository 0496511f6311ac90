// Package dockerapi benchmarks ferry's Docker Engine API against ferry's
// own CLI on the same work, through one daemon started in the test
// process: `docker run --rm IMG true` (the docker CLI over the Docker API)
// against `ferry run --rm IMG true` (ferry's CLI over ferry's API), in
// alternating rounds, and `docker ps -a` with 200 machines.
// bench/README.md records results.
package dockerapi
