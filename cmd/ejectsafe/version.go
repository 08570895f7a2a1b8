package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3"); else
// the module version from the build information.
var version = ""

type versionOut struct {
	header
	Version string `json:"version"`
	Go      string `json:"go"`
	SQLite  string `json:"sqlite"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func versionInfo() versionOut {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == "(devel)" {
					v = "(devel " + s.Value[:12] + ")"
				}
			}
		}
	}
	lib, _, _ := sqlite3.Version()
	return versionOut{header: newHeader("version", exitOK), Version: v, Go: runtime.Version(), SQLite: lib, OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// runVersion prints the versions of ejectsafe, Go and SQLite.
func runVersion(in *invocation) error {
	v := versionInfo()
	if in.json {
		writeJSON(in.stdout, v)
		return nil
	}
	fmt.Fprintf(in.stdout, "ejectsafe %s (%s, SQLite %s, %s/%s)\n", v.Version, v.Go, v.SQLite, v.OS, v.Arch)
	return nil
}
