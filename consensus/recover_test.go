package consensus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestParsePeers_ChecksTheConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []raft.Server // nil: refused with ErrPeersFile
		wantMsg  string
	}{
		{"consul's format", `[{"id":"n1","address":"10.0.0.1:7481","non_voter":false},{"id":"n2","address":"shoal2:7481","non_voter":true}]`,
			[]raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: "10.0.0.1:7481"}, {Suffrage: raft.Nonvoter, ID: "n2", Address: "shoal2:7481"}}, ""},
		{"non_voter omitted", `[{"id":"n1","address":"[::1]:7481"}]`,
			[]raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: "[::1]:7481"}}, ""},
		{"not json", `n1 10.0.0.1:7481`, nil, "JSON array"},
		{"truncated", `[{"id":"n1","address":"10.0.0.1:7481"}`, nil, "JSON array"},
		{"an object", `{"id":"n1","address":"10.0.0.1:7481"}`, nil, "JSON array"},
		{"unknown field", `[{"id":"n1","addr":"10.0.0.1:7481"}]`, nil, "unknown field"},
		{"trailing data", `[{"id":"n1","address":"10.0.0.1:7481"}] []`, nil, "after the array"},
		{"empty", `[]`, nil, "no servers"},
		{"null", `null`, nil, "no servers"},
		{"null server", `[null]`, nil, "is null"},
		{"no id", `[{"address":"10.0.0.1:7481"}]`, nil, "id"},
		{"no port", `[{"id":"n1","address":"10.0.0.1"}]`, nil, "host:port"},
		{"port 0", `[{"id":"n1","address":"10.0.0.1:0"}]`, nil, "host:port"},
		{"no host", `[{"id":"n1","address":":7481"}]`, nil, "host:port"},
		{"duplicate id", `[{"id":"n1","address":"a:1"},{"id":"n1","address":"b:1"}]`, nil, "twice"},
		{"duplicate address", `[{"id":"n1","address":"a:1"},{"id":"n2","address":"a:1"}]`, nil, "twice"},
		{"no voter", `[{"id":"n1","address":"a:1","non_voter":true}]`, nil, "no voter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePeers([]byte(tc.in))
			if tc.want == nil {
				if !errors.Is(err, ErrPeersFile) || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Fatalf("got %v, %v; want %v saying %q", got, err, ErrPeersFile, tc.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Servers) != len(tc.want) {
				t.Fatalf("got %v, want %v", got.Servers, tc.want)
			}
			for i := range tc.want {
				if got.Servers[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got.Servers, tc.want)
				}
			}
		})
	}
}

// FuzzParsePeers: a peers file either is refused or describes a valid
// configuration that raft accepts and that writes back to the same
// servers.
func FuzzParsePeers(f *testing.F) {
	f.Add([]byte(`[{"id":"n1","address":"10.0.0.1:7481","non_voter":false}]`))
	f.Add([]byte(`[{"id":"n1","address":"a:1"},{"id":"n2","address":"b:2","non_voter":true}]`))
	f.Add([]byte(`[{"id":"n1","address":"a:1"},{"id":"n1","address":"b:2"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParsePeers(data)
		if err != nil {
			if !errors.Is(err, ErrPeersFile) {
				t.Fatalf("refused with %v, not wrapping ErrPeersFile", err)
			}
			return
		}
		b, err := json.Marshal(peersOf(c))
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePeers(b)
		if err != nil || len(again.Servers) != len(c.Servers) {
			t.Fatalf("%s parsed, but its re-encoding %s does not: %v", data, b, err)
		}
		for i := range c.Servers {
			if again.Servers[i] != c.Servers[i] {
				t.Fatalf("%s: server %d changed from %v to %v", data, i, c.Servers[i], again.Servers[i])
			}
		}
	})
}
