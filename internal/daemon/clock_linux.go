package daemon

import "golang.org/x/sys/unix"

// clockSynced reports whether the kernel considers the system clock
// synchronised (by NTP or PTP): adjtimex does not return TIME_ERROR and
// STA_UNSYNC is clear.
func clockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
