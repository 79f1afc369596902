package protocol

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeClient(t *testing.T) {
	good := []string{
		`{"type":"subscribe","id":"a"}`,
		`{"type":"subscribe","pattern":"a-*","ref":"r1"}`,
		`{"type":"subscribe","id":"a","have_version":[1,2]}`,
		`{"type":"subscribe","pattern":"a-*","have_versions":{"a-1":3,"a-2":[1,2]}}`,
		`{"type":"subscribe","pattern":"a","have_versions":{"a":1}}`,
		`{"type":"unsubscribe","pattern":"*"}`,
		`{"type":"produce","patterns":["a-*","b"]}`,
		`{"type":"master","id":"a"}`,
		`{"type":"set","id":"a","version":1,"object":{}}`,
		`{"type":"patch","id":"a","from":1,"to":2,"patch":[]}`,
		`{"type":"produced","id":"a","version":{"d":1},"object":{"x":1}}`,
		`{"type":"stall","id":"a","version":3}`,
		`{"type":"failed","id":"a"}`,
		`{"type":"release","id":"a"}`,
	}
	for _, g := range good {
		if _, err := DecodeClient([]byte(g)); err != nil {
			t.Fatalf("DecodeClient(%s): %v", g, err)
		}
	}
	bad := []struct{ in, code, ref string }{
		{`not json`, CodeBadJSON, ""},
		{`{"type":"set","id":"a","ref":"r9","version":1}`, CodeBadMessage, "r9"},
		{`{"type":"subscribe","id":"a","pattern":"b"}`, CodeBadMessage, ""},
		{`{"type":"subscribe","id":"a*"}`, CodeInvalidID, ""},
		{`{"type":"subscribe","pattern":"a*","have_version":1}`, CodeBadMessage, ""},
		{`{"type":"subscribe","id":"a","have_versions":{"a":1}}`, CodeBadMessage, ""},
		{`{"type":"unsubscribe","pattern":"a*","have_versions":{"a":1}}`, CodeBadMessage, ""},
		{`{"type":"subscribe","pattern":"a-*","have_versions":{"b-1":1},"ref":"m"}`, CodeBadMessage, "m"},
		{`{"type":"subscribe","pattern":"a-*","have_versions":{"a-*":1}}`, CodeInvalidID, ""},
		{`{"type":"subscribe","pattern":"a-*","have_versions":{"a-1":null}}`, CodeBadMessage, ""},
		{`{"type":"master","id":"a","have_versions":{"a":1}}`, CodeBadMessage, ""},
		{`{"type":"teleport","ref":"x"}`, CodeUnknownType, "x"},
		{`{"ref":"x"}`, CodeBadMessage, "x"},
		{`{"type":"master","id":""}`, CodeInvalidID, ""},
		{`{"type":"master","id":"a","object":{}}`, CodeBadMessage, ""},
		{`{"type":"master","id":"a","extra":1,"ref":"q"}`, CodeBadJSON, "q"},
		{`{"type":"master","id":"a"} {}`, CodeBadJSON, ""},
		{`{"type":"error","code":"x"}`, CodeBadMessage, ""},
		{`{"type":"produce","patterns":[]}`, CodeBadMessage, ""},
		{`{"type":"master","id":"a\u0001"}`, CodeInvalidID, ""},
	}
	for _, b := range bad {
		_, err := DecodeClient([]byte(b.in))
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != b.code || pe.Ref != b.ref {
			t.Fatalf("DecodeClient(%s): got %v (%+v), want code %s ref %q", b.in, err, pe, b.code, b.ref)
		}
	}
}

func TestEncode_Error(t *testing.T) {
	b := Encode(Message{Type: TypeError, Code: "c", Message: "<m>", Ref: "r"})
	if string(b) != `{"type":"error","ref":"r","code":"c","message":"<m>"}` {
		t.Fatalf("got %s", b)
	}
}

// FuzzDecodeClient checks that the decoder never panics, that what it
// accepts re-encodes to a message it accepts again, and that every refusal
// is an *Error with a code.
func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","id":"a","have_version":1}`, `{"type":"set","id":"a","version":1,"object":{}}`,
		`{"type":"patch","id":"a","from":1,"to":2,"patch":[{"op":"add","path":"/x","value":1}]}`,
		`{"type":"produce","patterns":["*"]}`, `{"type":"x"}`, `[]`, `{"type":"set","id":"a","version":1,"object":{},"object":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeClient(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code == "" {
				t.Fatalf("refusal %v is not an *Error with a code", err)
			}
			return
		}
		again, err := DecodeClient(Encode(m))
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", Encode(m), err)
		}
		if a, b := Encode(m), Encode(again); string(a) != string(b) {
			var x, y any
			if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
				t.Fatalf("not stable: %s vs %s", a, b)
			}
		}
	})
}
