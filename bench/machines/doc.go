// Package machines benchmarks ferry's machine lifecycle through a whole
// daemon started in the test process: ps/inspect latency with 200 machines,
// and (with a kernel and ferry-init installed) run → VMM-started and
// create → started for the Nth machine. bench/README.md records results;
// run.sh times `ferry run --rm` against a bare QEMU boot.
package machines
