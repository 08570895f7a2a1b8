//go:build !linux

package bench

func bytesWritten() int64        { return -1 }
func peakRSS() int64             { return -1 }
func memTotal() int64            { return 0 }
func cpuModel() string           { return "" }
func kernelRelease() string      { return "" }
func dropCache(path string) bool { return false }
