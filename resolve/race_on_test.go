//go:build race

package resolve

// raceEnabled is set when the race detector runs, which changes allocation
// counts.
const raceEnabled = true
