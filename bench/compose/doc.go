// Package compose benchmarks `ferry compose up -d --wait` of three
// independent services (started at the same time) against three
// sequential `ferry run -d` each waited for until it takes exec requests,
// and against one such `ferry run`, on one daemon started in the test
// process, in alternating rounds. bench/README.md records results.
package compose
