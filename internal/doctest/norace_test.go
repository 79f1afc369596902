//go:build !race

package doctest

// raceEnabled: see race_test.go.
const raceEnabled = false
