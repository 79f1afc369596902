//go:build unix

package cli

import (
	"os"
	"os/exec"
	"syscall"
)

// forwardedSignals are passed on to the command of sem run and lock run.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// terminateSignal asks the command to stop.
var terminateSignal os.Signal = syscall.SIGTERM

// prepareChild starts the command in a process group of its own, so that
// the signals we pass on (and a kill) reach everything it started, and a
// terminal's Ctrl-C reaches it once, through us.
func prepareChild(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalChild sends sig to the command's process group.
func signalChild(cmd *exec.Cmd, sig os.Signal) {
	if cmd.Process == nil {
		return
	}
	if s, ok := sig.(syscall.Signal); ok {
		if err := syscall.Kill(-cmd.Process.Pid, s); err == nil {
			return
		}
	}
	_ = cmd.Process.Signal(sig) // it may have exited already
}

// killChild kills the command's process group.
func killChild(cmd *exec.Cmd) { signalChild(cmd, syscall.SIGKILL) }

// signalExitCode is 128+n for a command killed by signal n, as shells
// report it; 0 otherwise.
func signalExitCode(ee *exec.ExitError) int {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return 0
}
