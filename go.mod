module github.com/ejectsafe/ejectsafe

go 1.22

require (
	github.com/mattn/go-sqlite3 v1.14.52
	github.com/moby/sys/mountinfo v0.7.2
	golang.org/x/sys v0.30.0
)
