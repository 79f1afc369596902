package main

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill cmd's process when the test process
// dies, so an agent cannot outlive a test binary that panicked on -timeout
// (t.Cleanup does not run then).
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
