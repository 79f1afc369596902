//go:build unix && !linux

package main

import "os/exec"

// setDeathSignal does nothing where the kernel has no parent-death signal:
// t.Cleanup still kills every agent when a test ends normally.
func setDeathSignal(*exec.Cmd) {}
