//go:build !unix

package ws

import "errors"

// canWritev: no writev here; every data frame goes through its
// connection's writer, with blocking writes.
const canWritev = false

func writev(uintptr, [][]byte) (int, error) {
	return -1, errors.ErrUnsupported
}
