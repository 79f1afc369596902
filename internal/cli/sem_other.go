//go:build !unix

package cli

import (
	"os"
	"os/exec"
)

// forwardedSignals are passed on to the command of sem run and lock run.
var forwardedSignals = []os.Signal{os.Interrupt}

// terminateSignal asks the command to stop; without Unix signals, kill it.
var terminateSignal os.Signal = os.Kill

func prepareChild(*exec.Cmd) {}

func signalChild(cmd *exec.Cmd, sig os.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(sig) // it may have exited already
	}
}

func killChild(cmd *exec.Cmd) { signalChild(cmd, os.Kill) }

func signalExitCode(*exec.ExitError) int { return 0 }
