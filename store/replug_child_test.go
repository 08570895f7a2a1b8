package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const replugChildEnv = "EJECTSAFE_REPLUG_CHILD"

// Checkpoint policy of the replug child: short, so that the tests wait
// seconds, not minutes.
const (
	replugIdle     = 300 * time.Millisecond
	replugInterval = time.Second
)

// replugChild is the application of the replug tests, a process of its
// own: it opens the store with automatic checkpoints, runs one command per
// line of stdin and answers one line each; every state change is a line
// "event <condition> <reattached> <error>".
func replugChild(path string) int {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	s, err := Open(path, &Options{CheckpointIdle: replugIdle, CheckpointInterval: replugInterval,
		OnStateChange: func(e Event) {
			say("event %d %v %s", e.Condition, e.Reattached, strings.ReplaceAll(fmt.Sprint(e.Err), "\n", " "))
		}})
	if err != nil {
		say("error %v", err)
		return 2
	}
	say("ready")
	db := s.DB()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "create":
			_, err := db.Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, who TEXT, v BLOB)")
			say("ok %v", err)
		case "insert": // insert WHO N
			n, _ := strconv.Atoi(f[2])
			_, err := db.Exec("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<?) INSERT INTO t(who, v) SELECT ?, randomblob(200) FROM c", n, f[1])
			say("ok %v", err)
		case "checkpoint":
			err := s.Checkpoint(context.Background())
			say("ckpt changed=%v locked=%v lost=%v err=%v", errors.Is(err, ErrDriveChanged), errors.Is(err, ErrLocked), errors.Is(err, ErrDriveLost), err)
		case "count":
			var n int
			err := db.QueryRow("SELECT count(*) FROM t").Scan(&n)
			say("count %d %v", n, err)
		case "state":
			st := s.State()
			say("state %d %v", st.Condition, st.Err)
		case "close":
			say("close %v", s.Close())
			return 0
		}
	}
	return 0
}
