package lease

import "golang.org/x/sys/unix"

// peerUID is the effective uid of the process at the other end of a
// connected Unix socket, as the kernel recorded it at connect
// (LOCAL_PEERCRED).
func peerUID(fd int) (int, error) {
	cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if err != nil {
		return 0, err
	}
	return int(cred.Uid), nil
}
