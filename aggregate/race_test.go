//go:build race

package aggregate

// raceEnabled scales the randomized tests down under the race detector,
// which slows this single-goroutine code tenfold without finding more.
const raceEnabled = true
