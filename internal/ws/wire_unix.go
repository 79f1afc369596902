//go:build unix

package ws

import "golang.org/x/sys/unix"

// canWritev: this system has writev, for the non-blocking writes of
// wire.writevLocked.
const canWritev = true

// writev writes bufs to the non-blocking descriptor fd in one system call
// and returns how many bytes it took (negative, with an error, for none).
func writev(fd uintptr, bufs [][]byte) (int, error) {
	return unix.Writev(int(fd), bufs)
}
