package store

import "fmt"

// sharedOpenEnv makes the test binary open the store at its value and
// report, as uid 65534 (TestOpen_sharedVolume).
const sharedOpenEnv = "EJECTSAFE_TEST_SHARED_OPEN"

// sharedOpen is the second user of TestOpen_sharedVolume.
func sharedOpen(db string) int {
	s, err := Open(db, nil)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if _, err := s.DB().Exec("CREATE TABLE IF NOT EXISTS t(v); INSERT INTO t VALUES('nobody')"); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("lease:", s.lease.Path)
	if err := s.Close(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}
