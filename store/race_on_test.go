//go:build race

package store

// raceOn: built with -race, whose shadow memory adds to every heap
// byte's resident cost (TestHostLog_BigTransaction's bound).
const raceOn = true
