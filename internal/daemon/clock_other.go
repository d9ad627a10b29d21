//go:build !linux

package daemon

// clockSynced cannot ask the kernel outside Linux; the clock is trusted.
func clockSynced() bool { return true }
