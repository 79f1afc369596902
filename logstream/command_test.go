package logstream

import (
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

func TestValidName_Behavior(t *testing.T) {
	long := string(make([]byte, 129))
	tests := []struct {
		name string
		want bool
	}{
		{"a", true}, {"A-z_0.9", true}, {"..", true},
		{"", false}, {"a/b", false}, {"a b", false}, {"é", false}, {long, false},
		{string([]byte{'x', 0}), false},
	}
	for _, tt := range tests {
		if got := validName(tt.name); got != tt.want {
			t.Errorf("validName(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
	ok := make([]byte, 128)
	for i := range ok {
		ok[i] = 'x'
	}
	if !validName(string(ok)) {
		t.Errorf("a 128-byte name must be valid")
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
	want := Config{MaxEntries: 5, DedupWindow: time.Minute, StreamHeartbeat: 2 * time.Second}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	if d := fs.Lookup("log-max-entries").DefValue; d != "1000000" {
		t.Fatalf("default of log-max-entries: got %s", d)
	}
}
