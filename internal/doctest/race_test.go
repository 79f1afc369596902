//go:build race

package doctest

// raceEnabled: the shoal binary is built with -race too, so that it reuses
// the packages this test binary was compiled from.
const raceEnabled = true
