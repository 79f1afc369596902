package replication

import (
	"testing"

	"shoal/internal/moduletest"
	"shoal/modules"
)

// TestChooseLeader: the Raft leader claims replication leadership for
// itself only from inside the in-sync set; from outside it keeps a live
// recorded leader, or hands leadership to another live member, or, with
// none alive, to nobody.
func TestChooseLeader(t *testing.T) {
	tests := []struct {
		name  string
		st    syncState
		alive []string
		want  string
	}{
		{"new cluster", syncState{}, []string{"b"}, "b"},
		{"member", syncState{leader: "a", inSync: []string{"a", "b"}}, []string{"a", "b"}, "b"},
		{"outside, leader alive", syncState{leader: "a", inSync: []string{"a", "c"}}, []string{"a", "b", "c"}, "a"},
		{"outside, leader dead", syncState{leader: "a", inSync: []string{"a", "c"}}, []string{"b", "c"}, "c"},
		{"outside, no member alive", syncState{leader: "a", inSync: []string{"a", "c"}}, []string{"b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &moduletest.Cluster{ServersFunc: func() []modules.Server {
				var out []modules.Server
				for _, n := range []string{"a", "b", "c"} {
					alive := false
					for _, a := range tt.alive {
						alive = alive || a == n
					}
					out = append(out, modules.Server{Name: n, Voter: true, Alive: alive, Local: n == "b"})
				}
				return out
			}}
			m := &Replication{host: moduletest.NewHost(t, moduletest.WithName("b"), moduletest.WithCluster(cl))}
			if got := m.chooseLeader(tt.st); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
