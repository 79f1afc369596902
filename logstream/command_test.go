package logstream

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"reflect"
	"testing"
	"time"
)

func TestAppendCommand_RoundTrip(t *testing.T) {
	tests := []appendCmd{
		{log: "a", maxEntries: 1, entries: []newEntry{ent("", "null")}},
		{log: "orders.eu-1_x", maxEntries: 1_000_000, dedupWindow: 10 * time.Minute,
			entries: []newEntry{ent("k1", `{"a":[1,2]}`), ent("", `"s"`), ent(string(make([]byte, 256)), "3")}},
	}
	for _, c := range tests {
		payload := encodeAppend(c)
		got, err := decodeAppend(payload)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v, want %+v", got, c)
		}
		payload[len(payload)-1] = '!' // the decoded command must not alias the payload
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("decoded command aliases its payload")
		}
	}
}

func TestAppendResult_RoundTrip(t *testing.T) {
	r := appendResult{indexes: []uint64{1, 1 << 40, 7}, duplicates: []bool{false, true, false}}
	got, err := decodeResult(encodeResult(r))
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("got %+v, %v; want %+v", got, err, r)
	}
	for _, bad := range [][]byte{nil, {1}, {1, 1, 2}, {1, 1, 0, 0}, {0xff}} {
		if _, err := decodeResult(bad); !errors.Is(err, ErrMalformedCommand) {
			t.Fatalf("decodeResult(%x): got %v, want ErrMalformedCommand", bad, err)
		}
	}
}

// TestCommand_FormatIsPinned decodes bytes written by the encoder before
// it moved onto internal/wire, and checks the encoder still writes them:
// commands stay in the Raft log, and every node must apply them alike.
func TestCommand_FormatIsPinned(t *testing.T) {
	commands := []struct {
		c   appendCmd
		hex string
	}{
		{appendCmd{log: "a", maxEntries: 1, entries: []newEntry{ent("", "null")}}, "010001610100046e756c6c"},
		{appendCmd{log: "orders.eu-1_x", maxEntries: 1_000_000, dedupWindow: 10 * time.Minute,
			entries: []newEntry{ent("k1", `{"a":[1,2]}`), ent("", `"é"`)}},
			"c0843d80e0a596bb110d6f72646572732e65752d315f7802026b310b7b2261223a5b312c325d7d000422c3a922"},
	}
	for _, tt := range commands {
		want, _ := hex.DecodeString(tt.hex)
		if got := encodeAppend(tt.c); !bytes.Equal(got, want) {
			t.Errorf("append to %q: encodes as %x, want %x", tt.c.log, got, want)
		}
		if got, err := decodeAppend(want); err != nil || !reflect.DeepEqual(got, tt.c) {
			t.Errorf("append to %q: decodes as %+v, %v; want %+v", tt.c.log, got, err, tt.c)
		}
	}
	r := appendResult{indexes: []uint64{1, 1 << 40, 300}, duplicates: []bool{false, true, false}}
	want, _ := hex.DecodeString("03010080808080802001ac0200")
	if got := encodeResult(r); !bytes.Equal(got, want) {
		t.Errorf("result: encodes as %x, want %x", got, want)
	}
	if got, err := decodeResult(want); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("result: decodes as %+v, %v; want %+v", got, err, r)
	}
	// A padded (non-minimal) varint decoded before the move and no longer
	// does: no encoder ever wrote one, so no log holds one.
	first, _ := hex.DecodeString(commands[0].hex)
	if _, err := decodeAppend(append([]byte{0x81, 0x00}, first[1:]...)); !errors.Is(err, ErrMalformedCommand) {
		t.Errorf("a padded max entries: got %v, want ErrMalformedCommand", err)
	}
	if _, err := decodeResult(append([]byte{0x83, 0x00}, want[1:]...)); !errors.Is(err, ErrMalformedCommand) {
		t.Errorf("a padded result count: got %v, want ErrMalformedCommand", err)
	}
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero window disables dedup", func(c *Config) { c.DedupWindow = 0 }, true},
		{"zero max entries", func(c *Config) { c.MaxEntries = 0 }, false},
		{"negative window", func(c *Config) { c.DedupWindow = -time.Second }, false},
		{"zero heartbeat", func(c *Config) { c.StreamHeartbeat = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.modify(&c)
			err := c.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestConfig_BindFlags(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.BindFlags(fs)
	if err := fs.Parse([]string{"-log-max-entries=5", "-log-dedup-window=1m", "-log-stream-heartbeat=2s"}); err != nil {
		t.Fatalf("parse: %v", err)
	}
	want := DefaultConfig()
	want.MaxEntries, want.DedupWindow, want.StreamHeartbeat = 5, time.Minute, 2*time.Second
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if d := fs.Lookup("log-max-entries").DefValue; d != "1000000" {
		t.Fatalf("default of log-max-entries: got %s", d)
	}
}
