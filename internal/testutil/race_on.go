//go:build race

package testutil

// raceEnabled makes Binary build the server with the race detector too, so
// tests run under -race check the real process.
const raceEnabled = true
