//go:build race

package poll_test

// raceEnabled is set when the tests run under the race detector, whose
// hooks in x/sys/unix make small read and write buffers escape to the heap.
const raceEnabled = true
