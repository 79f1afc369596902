package sse

import (
	"bytes"
	"strconv"
	"time"

	"shoal/internal/httpjson"
)

// Event is one Server-Sent Event.
type Event struct {
	// ID, if not empty, is sent as "id:"; a client that reconnects sends
	// the last one it received as the Last-Event-ID header.
	ID string
	// Type, if not empty, is sent as "event:"; clients default to "message".
	Type string
	// Data is sent as one "data:" line per line (split at "\n", "\r\n" or
	// "\r"); the client joins them again with "\n".
	Data []byte
}

// Event queues ev for the next Flush. ID and Type must not contain line
// breaks: they would end the field early.
func (s *Stream) Event(ev Event) {
	s.writeHead(ev.ID, ev.Type)
	data := ev.Data
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		s.writeData(data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	s.writeData(data)
	s.buf.WriteByte('\n')
}

// JSONEvent queues an event of type typ (and id, if not empty) whose data
// is v as one line of compact JSON, HTML characters not escaped. It fails
// only if encoding/json cannot encode v; nothing is queued then.
func (s *Stream) JSONEvent(typ, id string, v any) error {
	n := s.buf.Len()
	s.writeHead(id, typ)
	s.buf.WriteString("data: ")
	// Compact JSON has no line breaks (they are escaped in strings), so
	// it is one data line; Encode ends it with '\n'.
	if err := s.enc.Encode(v); err != nil {
		s.buf.Truncate(n)
		return err
	}
	s.buf.WriteByte('\n')
	return nil
}

// StreamErrorType is the event type of StreamError.
const StreamErrorType = "stream_error"

// ErrorEvent queues an "error" event whose data is err in the API's error
// shape (see httpjson.Error.Body): how a stream whose status was already
// sent reports the failure that ends it.
//
// New streams use StreamError instead: a browser's EventSource fires an
// "error" event of its own when the connection fails, so a listener for
// "error" cannot tell the server's error from a lost connection (whose
// event has no data). ErrorEvent stays for the streams whose clients read
// "error" already (logstream, objectsync, locks), until they move.
func (s *Stream) ErrorEvent(err error) {
	_ = s.JSONEvent("error", "", httpjson.As(err).Body()) // a map of strings and JSON details always encodes
}

// StreamError queues a StreamErrorType ("stream_error") event whose data
// is err in the API's error shape (see httpjson.Error.Body): how a stream
// whose status was already sent reports the failure that ends it, under a
// name that no EventSource uses for its own events.
func (s *Stream) StreamError(err error) {
	_ = s.JSONEvent(StreamErrorType, "", httpjson.As(err).Body()) // always encodes
}

// Retry queues a "retry:" field of d (in whole milliseconds, at least 1):
// how long a browser's EventSource waits before it reconnects after the
// connection is lost. A module sends it first, before Begin. It is not an
// event: clients dispatch nothing for it.
func (s *Stream) Retry(d time.Duration) {
	s.buf.WriteString("retry: ")
	s.buf.WriteString(strconv.FormatInt(max(d.Milliseconds(), 1), 10))
	s.buf.WriteString("\n\n")
}

// Position queues an "id:" field alone: it sets the client's last event
// ID (what a reconnecting EventSource sends as Last-Event-ID) without
// dispatching an event, as the SSE specification's dispatch step does
// with an empty data buffer. A module uses it to tell a client where the
// stream is when no event carried an id lately: at the start of a stream,
// or with a heartbeat. id must not contain line breaks.
func (s *Stream) Position(id string) {
	s.buf.WriteString("id: ")
	s.buf.WriteString(id)
	s.buf.WriteString("\n\n")
}

// Heartbeat queues a ": ping" comment, which clients ignore. A module sends
// it when a stream has been quiet for a while, so that proxies and the
// client's idle timeout keep the stream open and a client that went away
// is noticed by the failing write.
func (s *Stream) Heartbeat() {
	s.buf.WriteString(": ping\n\n")
}

func (s *Stream) writeHead(id, typ string) {
	if id != "" {
		s.buf.WriteString("id: ")
		s.buf.WriteString(id)
		s.buf.WriteByte('\n')
	}
	if typ != "" {
		s.buf.WriteString("event: ")
		s.buf.WriteString(typ)
		s.buf.WriteByte('\n')
	}
}

func (s *Stream) writeData(line []byte) {
	s.buf.WriteString("data: ")
	s.buf.Write(line)
	s.buf.WriteByte('\n')
}
