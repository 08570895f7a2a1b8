package lease

import "io/fs"

// Windows leases are judged by their ACLs, not by owner uids here.
func ownerOf(fs.FileInfo) int { return -1 }

func processOwner(int) (int, bool) { return 0, false }
