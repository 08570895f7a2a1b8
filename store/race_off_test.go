//go:build !race

package store

// raceOn: built with -race (race_on_test.go).
const raceOn = false
