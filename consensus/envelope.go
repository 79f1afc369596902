package consensus

import (
	"fmt"

	"shoal/modules"
)

// A command on the Raft log is an envelope: one byte naming the module that
// owns it (modules.Tag), one byte of operation that only the module
// interprets, then the module's payload.
const envelopeHeader = 2

// Core operations, under modules.TagNone.
const (
	// opTermStart is committed by a new leader before it serves reads or
	// tells modules it leads. Unlike raft's own no-op it reaches the FSM, so
	// the FSM's applied index covers every index a read may wait for.
	opTermStart byte = 1
	// opCommitNotice is committed by the leader when writes stop, so that
	// followers learn at once that the last write is committed
	// (commitnotice.go). It changes no state.
	opCommitNotice byte = 2
)

// EncodeCommand builds the envelope of a module command.
func EncodeCommand(tag modules.Tag, op byte, payload []byte) []byte {
	buf := make([]byte, envelopeHeader+len(payload))
	buf[0] = byte(tag)
	buf[1] = op
	copy(buf[envelopeHeader:], payload)
	return buf
}

// DecodeCommand splits an envelope. The payload aliases data.
func DecodeCommand(data []byte) (modules.Tag, byte, []byte, error) {
	if len(data) < envelopeHeader {
		return 0, 0, nil, fmt.Errorf("decode command: %d bytes is shorter than the %d-byte envelope header", len(data), envelopeHeader)
	}
	return modules.Tag(data[0]), data[1], data[envelopeHeader:], nil
}
