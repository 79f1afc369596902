package clusterport

import (
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Kind says what a connection carries. Kind numbers are part of the wire
// format: never reuse one.
type Kind byte

const (
	// KindRaft carries hashicorp/raft's NetworkTransport protocol.
	KindRaft Kind = 1
	// KindRPC carries pipelined calls between nodes (peerrpc).
	KindRPC Kind = 2
	// KindStream carries one long-lived byte stream of a module (peerrpc).
	KindStream Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindRaft:
		return "raft"
	case KindRPC:
		return "rpc"
	case KindStream:
		return "stream"
	default:
		return fmt.Sprintf("kind(%d)", byte(k))
	}
}

// The header a dialer sends first on every connection:
//
//	magic    4 bytes  "shcp"
//	version  1 byte   1
//	kind     1 byte   a Kind
//	from     1 byte length (1..MaxNameLen), then the sender's node name
//	to       1 byte length (1..MaxNameLen), then the receiver's node name
//
// The receiver answers with one status byte: 0 accepted, after which the
// connection belongs to the kind's protocol; otherwise a Reason, followed
// by a 1-byte length and a short message, and the connection is closed.
const (
	magic         = "shcp"
	version  byte = 1
	fixedLen      = len(magic) + 2
	// MaxNameLen bounds node names in the header (agent names are at most
	// 64 bytes; the rest is headroom for future versions).
	MaxNameLen = 255
)

// Header is what a connection says about itself.
type Header struct {
	Kind Kind
	From string // the sender's node name
	To   string // the node the sender means to reach
}

// ErrBadHeader is wrapped by every error decoding a header returns.
var ErrBadHeader = errors.New("bad cluster port header")

// AppendHeader appends h's wire form to buf. It fails if a name is empty,
// longer than MaxNameLen or not valid UTF-8.
func AppendHeader(buf []byte, h Header) ([]byte, error) {
	for _, n := range []string{h.From, h.To} {
		if err := checkName(n); err != nil {
			return nil, err
		}
	}
	buf = append(buf, magic...)
	buf = append(buf, version, byte(h.Kind))
	buf = append(buf, byte(len(h.From)))
	buf = append(buf, h.From...)
	buf = append(buf, byte(len(h.To)))
	buf = append(buf, h.To...)
	return buf, nil
}

// ReadHeader reads one header from r, reading exactly its bytes and no
// more (the protocol that follows reads the rest of the connection).
func ReadHeader(r io.Reader) (Header, error) {
	var fixed [fixedLen]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if string(fixed[:len(magic)]) != magic {
		return Header{}, fmt.Errorf("%w: not a shoal cluster port connection", ErrBadHeader)
	}
	if v := fixed[len(magic)]; v != version {
		return Header{}, fmt.Errorf("%w: version %d, this node speaks %d", ErrBadHeader, v, version)
	}
	h := Header{Kind: Kind(fixed[len(magic)+1])}
	var err error
	if h.From, err = readName(r, "sender"); err != nil {
		return Header{}, err
	}
	if h.To, err = readName(r, "receiver"); err != nil {
		return Header{}, err
	}
	return h, nil
}

func readName(r io.Reader, what string) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("%w: %s name length: %w", ErrBadHeader, what, err)
	}
	if n[0] == 0 {
		return "", fmt.Errorf("%w: empty %s name", ErrBadHeader, what)
	}
	buf := make([]byte, n[0])
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("%w: %s name: %w", ErrBadHeader, what, err)
	}
	if !utf8.Valid(buf) {
		return "", fmt.Errorf("%w: %s name is not UTF-8", ErrBadHeader, what)
	}
	return string(buf), nil
}

func checkName(n string) error {
	switch {
	case n == "":
		return errors.New("cluster port header: empty node name")
	case len(n) > MaxNameLen:
		return fmt.Errorf("cluster port header: node name of %d bytes exceeds %d", len(n), MaxNameLen)
	case !utf8.ValidString(n):
		return errors.New("cluster port header: node name is not UTF-8")
	}
	return nil
}

// Reason is why a receiver refused a connection. Reason numbers are part
// of the wire format: never reuse one.
type Reason byte

const (
	accepted Reason = 0
	// ReasonWrongNode: the connection was meant for another node (its
	// address is stale: another node, or the sender, listens there now).
	ReasonWrongNode Reason = 1
	// ReasonSelf: the sender claims to be the receiver.
	ReasonSelf Reason = 2
	// ReasonUnknownKind: the receiver serves no such kind (yet, or at all).
	ReasonUnknownKind Reason = 3
	// ReasonBadHeader: the header could not be read.
	ReasonBadHeader Reason = 4
	// ReasonImpostor: the header names another sender than the peer's
	// certificate.
	ReasonImpostor Reason = 5
	// ReasonTLS: the TLS handshake failed (the peer does not hold the
	// cluster's secret, or speaks plain TCP). Never sent: it is a metric
	// label and a log value.
	ReasonTLS Reason = 6
)

// String is the reason's metric label and log value.
func (r Reason) String() string {
	switch r {
	case accepted:
		return "accepted"
	case ReasonWrongNode:
		return "wrong_node"
	case ReasonSelf:
		return "self"
	case ReasonUnknownKind:
		return "unknown_kind"
	case ReasonBadHeader:
		return "bad_header"
	case ReasonImpostor:
		return "impostor"
	case ReasonTLS:
		return "tls"
	default:
		return fmt.Sprintf("reason(%d)", byte(r))
	}
}

// maxMessageLen bounds a refusal's message.
const maxMessageLen = 255

// appendRefusal appends a refusal answer: the reason, then the message
// (cut to maxMessageLen bytes).
func appendRefusal(buf []byte, r Reason, msg string) []byte {
	if len(msg) > maxMessageLen {
		msg = msg[:maxMessageLen]
	}
	buf = append(buf, byte(r), byte(len(msg)))
	return append(buf, msg...)
}

// readAnswer reads the receiver's answer: nil when it accepted, a
// *RefusedError when it refused.
func readAnswer(r io.Reader, h Header) error {
	var status [2]byte
	if _, err := io.ReadFull(r, status[:1]); err != nil {
		return fmt.Errorf("read the answer of %s: %w", h.To, err)
	}
	if Reason(status[0]) == accepted {
		return nil
	}
	e := &RefusedError{Reason: Reason(status[0]), To: h.To}
	if _, err := io.ReadFull(r, status[1:]); err == nil {
		msg := make([]byte, status[1])
		if _, err := io.ReadFull(r, msg); err == nil {
			e.Message = string(msg)
		}
	}
	return e
}

// ErrTLS is wrapped by the error of a dial whose TLS handshake failed.
var ErrTLS = errors.New("cluster port TLS handshake failed")

// ErrRefused is wrapped by every *RefusedError.
var ErrRefused = errors.New("cluster port connection refused")

// RefusedError is a receiver's refusal of a connection.
type RefusedError struct {
	Reason  Reason
	To      string // the node the connection was meant for
	Message string // the receiver's explanation
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("connection meant for %s refused (%s): %s", e.To, e.Reason, e.Message)
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }
