package consensus

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
)

func TestBatch_RoundTrip(t *testing.T) {
	cmds := [][]byte{
		EncodeCommand(modules.TagLog, 1, []byte("a")),
		EncodeCommand(modules.TagLocks, 2, nil),
		EncodeCommand(modules.TagLog, 1, bytes.Repeat([]byte("z"), 300)),
	}
	got, err := DecodeBatch(EncodeBatch(cmds))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(cmds) {
		t.Fatalf("got %d commands, want %d", len(got), len(cmds))
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Fatalf("command %d: got %x, want %x", i, got[i], cmds[i])
		}
	}
}

func TestBatch_RejectsBadInput(t *testing.T) {
	good := EncodeBatch([][]byte{EncodeCommand(modules.TagLog, 1, []byte("x"))})
	cases := map[string][]byte{
		"empty":          nil,
		"zero commands":  {0},
		"short command":  {1, 1, 5},
		"length too big": {1, 200, 1, 1},
		"trailing bytes": append(append([]byte{}, good...), 9),
		"too many":       EncodeBatch(make([][]byte, maxBatchCommands+1)),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeBatch(data); err == nil {
				t.Fatal("bad batch accepted")
			}
		})
	}
}

func TestOutcomes_KeepErrorsAndResults(t *testing.T) {
	full := httpjson.Errorf(409, "semaphore_full", "semaphore %q is full", "s")
	outs := []Outcome{
		{Index: 7, Result: []byte("ok")},
		{Index: 8, Err: full.WithDetail("limit", 3)},
		{Err: ErrNoLeader},
		{Index: 9},
	}
	got, err := DecodeOutcomes(EncodeOutcomes(outs))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Index != 7 || string(got[0].Result) != "ok" || got[0].Err != nil {
		t.Fatalf("outcome 0: %+v", got[0])
	}
	var e *httpjson.Error
	if !errors.As(got[1].Err, &e) || !errors.Is(got[1].Err, full) || e.Status != 409 || e.Details["limit"] != float64(3) || got[1].Index != 8 {
		t.Fatalf("outcome 1: %+v", got[1])
	}
	if !errors.Is(got[2].Err, ErrNoLeader) || !errors.As(got[2].Err, &e) || e.RetryAfter != time.Second {
		t.Fatalf("outcome 2 lost its error or Retry-After: %+v", got[2])
	}
	if got[3].Index != 9 || len(got[3].Result) != 0 || got[3].Err != nil {
		t.Fatalf("outcome 3: %+v", got[3])
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch([][]byte{EncodeCommand(modules.TagLog, 1, []byte("x")), EncodeCommand(modules.TagKV, 3, nil)}))
	f.Add([]byte{1, 2, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		cmds, err := DecodeBatch(data)
		if err != nil {
			return
		}
		// Varints may come in non-minimal forms, so compare what decodes.
		again, err := DecodeBatch(EncodeBatch(cmds))
		if err != nil || len(again) != len(cmds) {
			t.Fatalf("re-encoded batch of %x does not decode: %v", data, err)
		}
		for i := range cmds {
			if !bytes.Equal(again[i], cmds[i]) {
				t.Fatalf("command %d changed in a round trip", i)
			}
		}
	})
}

func FuzzDecodeOutcomes(f *testing.F) {
	f.Add(EncodeOutcomes([]Outcome{{Index: 3, Result: []byte("r")}, {Index: 4, Err: ErrLeadershipLost}}))
	f.Add([]byte{1, 0, 1, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		outs, err := DecodeOutcomes(data)
		if err != nil {
			return
		}
		for _, o := range outs {
			if o.Err != nil {
				var e *httpjson.Error
				if !errors.As(o.Err, &e) || e.Status < 400 {
					t.Fatalf("decoded error %v is not a client error", o.Err)
				}
			}
		}
	})
}
