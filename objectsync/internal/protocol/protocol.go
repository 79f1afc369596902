package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"shoal/objectsync/internal/document"
)

// Subprotocol is the websocket subprotocol of objectsync: one message per
// text frame.
const Subprotocol = "shoal.objects.v1"

// BatchSubprotocol is Subprotocol where a server text frame may carry
// several messages, one per line (messages are compact JSON, which never
// holds a raw newline): a server whose connection has several messages
// waiting writes them at once. Clients offer it first.
const BatchSubprotocol = "shoal.objects.v2"

// Client message types.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeProduce     = "produce"
	TypeMaster      = "master"
	TypeSet         = "set"
	TypePatch       = "patch"
	TypeProduced    = "produced"
	TypeStall       = "stall"
	TypeFailed      = "failed"
	TypeRelease     = "release"
)

// Server message types (besides TypePatch and TypeProduce, which both
// sides use).
const (
	TypeObject  = "object"
	TypeRemoved = "removed"
	TypeError   = "error"
)

// MaxRefLen bounds the "ref" a client may attach to a message.
const MaxRefLen = 128

// MaxPatterns bounds the patterns of one produce message.
const MaxPatterns = 64

// MaxHaveVersions bounds the have_versions of one subscribe message.
const MaxHaveVersions = 10000

// Message is every message of the protocol, in both directions; each type
// uses some of the fields (docs/objectsync.md lists them).
type Message struct {
	Type string `json:"type"`
	// Ref is the client's own tag for a message; an error about it
	// carries it back.
	Ref         string          `json:"ref,omitempty"`
	ID          string          `json:"id,omitempty"`
	Pattern     string          `json:"pattern,omitempty"`
	Patterns    []string        `json:"patterns,omitempty"`
	HaveVersion json.RawMessage `json:"have_version,omitempty"`
	// HaveVersions are, for a subscription to a pattern, the versions the
	// client holds of objects the pattern matches: those it is caught up
	// on with patches, as an id with have_version is.
	HaveVersions map[string]json.RawMessage `json:"have_versions,omitempty"`
	Version      json.RawMessage            `json:"version,omitempty"`
	Object       json.RawMessage            `json:"object,omitempty"`
	From         json.RawMessage            `json:"from,omitempty"`
	To           json.RawMessage            `json:"to,omitempty"`
	Patch        json.RawMessage            `json:"patch,omitempty"`
	// Code and Message are an error's.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error is why a client message was refused: the code and message of the
// error frame the server answers with, and the message's ref.
type Error struct {
	Code    string
	Message string
	Ref     string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Codes of Decode's errors.
const (
	CodeBadJSON     = "bad_json"
	CodeBadMessage  = "bad_message"
	CodeUnknownType = "unknown_type"
	CodeInvalidID   = "invalid_id"
)

func refuse(ref, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Ref: ref}
}

// DecodeClient decodes one client message and checks the fields its type
// requires (ids and patterns valid, versions present where needed, object
// and patch present). Versions, objects and patches stay raw: the module
// parses them with its limits. Every failure is an *Error, carrying the
// message's ref when it could be read.
func DecodeClient(b []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		var ref struct {
			Ref string `json:"ref"`
		}
		_ = json.Unmarshal(b, &ref) // best effort, to tag the error
		if len(ref.Ref) > MaxRefLen {
			ref.Ref = ""
		}
		return Message{}, refuse(ref.Ref, CodeBadJSON, "the message is not a JSON object of this protocol: %s", err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, refuse(m.Ref, CodeBadJSON, "the message has data after its JSON object")
	}
	if len(m.Ref) > MaxRefLen {
		return Message{}, refuse("", CodeBadMessage, "ref is %d bytes; the limit is %d", len(m.Ref), MaxRefLen)
	}
	if m.Code != "" || m.Message != "" {
		return Message{}, refuse(m.Ref, CodeBadMessage, "code and message are fields of server messages")
	}
	switch m.Type {
	case TypeSubscribe, TypeUnsubscribe:
		switch {
		case (m.ID == "") == (m.Pattern == ""):
			return Message{}, refuse(m.Ref, CodeBadMessage, "%s takes exactly one of id and pattern", m.Type)
		case m.ID != "" && !document.ValidID(m.ID):
			return Message{}, badID(m)
		case m.Pattern != "" && !document.ValidPattern(m.Pattern):
			return Message{}, refuse(m.Ref, CodeInvalidID, "a pattern is 1 to %d bytes of UTF-8 without control characters", document.MaxIDLen)
		case m.HaveVersion != nil && (m.Type != TypeSubscribe || m.ID == ""):
			return Message{}, refuse(m.Ref, CodeBadMessage, "have_version goes with subscribe to an id")
		case m.HaveVersions != nil && (m.Type != TypeSubscribe || m.Pattern == ""):
			return Message{}, refuse(m.Ref, CodeBadMessage, "have_versions goes with subscribe to a pattern")
		case len(m.HaveVersions) > MaxHaveVersions:
			return Message{}, refuse(m.Ref, CodeBadMessage, "have_versions has %d entries; the limit is %d", len(m.HaveVersions), MaxHaveVersions)
		}
		for id, v := range m.HaveVersions {
			switch {
			case !document.ValidID(id):
				return Message{}, refuse(m.Ref, CodeInvalidID, "have_versions: an id is 1 to %d bytes of UTF-8 without control characters or '*'", document.MaxIDLen)
			case !document.Match(m.Pattern, id):
				return Message{}, refuse(m.Ref, CodeBadMessage, "have_versions: %q does not match the pattern %q", id, m.Pattern)
			case len(v) == 0 || string(v) == "null":
				return Message{}, refuse(m.Ref, CodeBadMessage, "have_versions: %q has no version", id)
			}
		}
		return m, only(m, "id", "pattern", "have_version", "have_versions")
	case TypeProduce:
		if len(m.Patterns) == 0 || len(m.Patterns) > MaxPatterns {
			return Message{}, refuse(m.Ref, CodeBadMessage, "produce takes 1 to %d patterns", MaxPatterns)
		}
		for _, p := range m.Patterns {
			if !document.ValidPattern(p) {
				return Message{}, refuse(m.Ref, CodeInvalidID, "pattern %q is not 1 to %d bytes of UTF-8 without control characters", p, document.MaxIDLen)
			}
		}
		return m, only(m, "patterns")
	case TypeMaster, TypeRelease, TypeStall, TypeFailed:
		if !document.ValidID(m.ID) {
			return Message{}, badID(m)
		}
		if m.Type == TypeStall && m.Version == nil {
			return Message{}, refuse(m.Ref, CodeBadMessage, "stall needs a version")
		}
		if m.Type == TypeStall {
			return m, only(m, "id", "version")
		}
		return m, only(m, "id")
	case TypeSet, TypeProduced:
		switch {
		case !document.ValidID(m.ID):
			return Message{}, badID(m)
		case m.Version == nil || m.Object == nil:
			return Message{}, refuse(m.Ref, CodeBadMessage, "%s needs a version and an object", m.Type)
		}
		return m, only(m, "id", "version", "object")
	case TypePatch:
		switch {
		case !document.ValidID(m.ID):
			return Message{}, badID(m)
		case m.From == nil || m.To == nil || m.Patch == nil:
			return Message{}, refuse(m.Ref, CodeBadMessage, "patch needs from, to and patch")
		}
		return m, only(m, "id", "from", "to", "patch")
	case "":
		return Message{}, refuse(m.Ref, CodeBadMessage, "the message has no type")
	default:
		return Message{}, refuse(m.Ref, CodeUnknownType, "unknown message type %q", m.Type)
	}
}

func badID(m Message) *Error {
	return refuse(m.Ref, CodeInvalidID, "an id is 1 to %d bytes of UTF-8 without control characters or '*'", document.MaxIDLen)
}

// only refuses a message that sets a field its type does not use.
func only(m Message, allowed ...string) error {
	set := map[string]bool{
		"id": m.ID != "", "pattern": m.Pattern != "", "patterns": m.Patterns != nil,
		"have_version": m.HaveVersion != nil, "have_versions": m.HaveVersions != nil, "version": m.Version != nil, "object": m.Object != nil,
		"from": m.From != nil, "to": m.To != nil, "patch": m.Patch != nil,
	}
	for _, a := range allowed {
		delete(set, a)
	}
	for _, f := range []string{"id", "pattern", "patterns", "have_version", "have_versions", "version", "object", "from", "to", "patch"} {
		if set[f] {
			return refuse(m.Ref, CodeBadMessage, "%s takes no %s", m.Type, f)
		}
	}
	return nil
}

// Encode returns m as one compact JSON text frame.
func Encode(m Message) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		// Only a RawMessage field that is not JSON fails; the module never
		// puts one there. Send an error frame rather than nothing.
		return Encode(Message{Type: TypeError, Code: "internal", Message: "a message could not be encoded", Ref: m.Ref})
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
