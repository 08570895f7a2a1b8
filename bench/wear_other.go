//go:build !linux

package bench

import (
	"errors"
	"runtime"
)

// blockDev: device byte counts come from Linux's /sys/class/block; other
// platforms report -1.
type blockDev struct{ name, why string }

func blockDevice(string) blockDev {
	return blockDev{why: "device write counts are read from Linux's /sys/class/block, not on " + runtime.GOOS}
}

func (blockDev) written() int64 { return -1 }

func throttle(string, blockDev, float64) (func(), string, error) {
	return nil, "", errors.New("throttling uses Linux cgroup-v1 blkio, not on " + runtime.GOOS)
}
