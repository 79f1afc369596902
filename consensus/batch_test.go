package consensus

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/wire"
	"shoal/modules"
)

// testErrors is the agent's codec for forwarded errors (httpjson's, which
// keeps a module error's status and details and a consensus error's code).
var testErrors = ErrorCodec{
	Encode: httpjson.MarshalError,
	Decode: httpjson.DecodeError,
}

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
	got, err := DecodeOutcomes(EncodeOutcomes(outs, testErrors), testErrors)
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
	f.Add(EncodeOutcomes([]Outcome{{Index: 3, Result: []byte("r")}, {Index: 4, Err: ErrLeadershipLost}}, testErrors))
	f.Add([]byte{1, 0, 1, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		outs, err := DecodeOutcomes(data, testErrors)
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

// TestBatch_FormatIsPinned decodes bytes written by the encoders before
// they moved onto internal/wire, and checks the encoders still write them:
// followers and leaders of different versions forward to each other.
func TestBatch_FormatIsPinned(t *testing.T) {
	cmds := [][]byte{
		EncodeCommand(modules.TagLog, 1, []byte("a")),
		EncodeCommand(modules.TagLocks, 2, nil),
		EncodeCommand(modules.TagLog, 1, bytes.Repeat([]byte("z"), 130)),
	}
	pinned, _ := hex.DecodeString("030301016102030284010101" + strings.Repeat("7a", 130))
	batch := bytes.Clone(pinned)
	if got := EncodeBatch(cmds); !bytes.Equal(got, batch) {
		t.Errorf("batch: encodes as %x, want %x", got, batch)
	}
	got, err := DecodeBatch(batch)
	if err != nil || len(got) != len(cmds) {
		t.Fatalf("batch: decodes as %d commands, %v", len(got), err)
	}
	for i := range cmds {
		if !bytes.Equal(got[i], cmds[i]) {
			t.Errorf("command %d: got %x, want %x", i, got[i], cmds[i])
		}
	}
	// The commands alias the batch, and an append to one cannot overwrite
	// the next.
	got[0] = append(got[0], '!')
	if !bytes.Equal(batch[5:7], []byte{2, 3}) {
		t.Errorf("an append to a decoded command wrote into the batch: %x", batch[:8])
	}
	batch[7] = 9 // command 1's op
	if got[1][1] != 9 {
		t.Errorf("commands do not alias the batch as documented")
	}

	outs := []Outcome{{Index: 7, Result: []byte("ok")}, {Index: 300, Err: httpjson.Errorf(409, "full", "full")}, {Index: 9}}
	wantOuts, _ := hex.DecodeString("030700026f6bac02012d7b22737461747573223a3430392c22636f6465223a2266756c6c222c226d657373616765223a2266756c6c227d090000")
	if got := EncodeOutcomes(outs, testErrors); !bytes.Equal(got, wantOuts) {
		t.Errorf("outcomes: encode as %x, want %x", got, wantOuts)
	}
	gotOuts, err := DecodeOutcomes(wantOuts, testErrors)
	if err != nil || len(gotOuts) != 3 || gotOuts[0].Index != 7 || string(gotOuts[0].Result) != "ok" ||
		gotOuts[1].Index != 300 || !errors.Is(gotOuts[1].Err, outs[1].Err) || gotOuts[2].Index != 9 || len(gotOuts[2].Result) != 0 {
		t.Errorf("outcomes: decode as %+v, %v", gotOuts, err)
	}

	// A padded (non-minimal) varint decoded before the move and no longer
	// does: no encoder ever wrote one.
	if _, err := DecodeBatch(append([]byte{0x83, 0x00}, pinned[1:]...)); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("a padded command count: got %v, want wire.ErrMalformed", err)
	}
}
