package servicetest

import "syscall"

// sysProcAttr puts the service in its own process group and asks the kernel
// to SIGKILL it when the test binary dies (also on Ctrl-C or a panic, when
// t.Cleanup does not run).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
