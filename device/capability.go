package device

// Capabilities: what an FS offers beside the seam. Code that needs more
// than FS asks for a capability (IsNative, VolumeOf), never for a
// particular FS value, so a decorator over the OS's FS (a fault injector,
// a tracer) is treated as the OS's FS.

// Wrapper is implemented by an FS that decorates another: Unwrap returns
// the FS it forwards to. A wrapper keeps the inner FS's names (a path
// means the same file through both), so the capabilities of the inner FS
// are its own unless it implements them itself.
type Wrapper interface {
	FS
	Unwrap() FS
}

// Native is implemented by an FS whose names are the operating system's:
// a path given to it names the file os.Open would open. What ejectsafe
// does around the seam applies only to such an FS: probing the mount
// (package probe), resolving symbolic links, the volume's lease directory,
// the host log on the host's disk. device.OS is native; faultinject's
// in-memory FS is not.
type Native interface {
	Native() bool
}

// IsNative reports whether fsys is native: the first of fsys and the FSs
// it wraps (Wrapper) that implements Native answers. An FS that neither
// implements Native nor wraps one is not native.
func IsNative(fsys FS) bool {
	n, ok := capability[Native](fsys)
	return ok && n.Native()
}

// capability returns the first of fsys and the FSs it wraps that
// implements T.
func capability[T any](fsys FS) (T, bool) {
	for fsys != nil {
		if c, ok := fsys.(T); ok {
			return c, true
		}
		w, ok := fsys.(Wrapper)
		if !ok {
			break
		}
		fsys = w.Unwrap()
	}
	var zero T
	return zero, false
}
