package consensus

import "testing"

func TestPlanVoters(t *testing.T) {
	v := func(name, zone string, healthy bool) voterView {
		return voterView{name: name, voter: true, healthy: healthy, zone: zone}
	}
	nv := func(name, zone string, healthy bool) voterView {
		return voterView{name: name, healthy: healthy, zone: zone}
	}
	leader := func(s voterView) voterView { s.leader = true; return s }
	tests := []struct {
		name    string
		max     int
		servers []voterView
		want    voterChange
	}{
		{"three servers, all voters: nothing", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true)}, voterChange{}},
		{"a fourth server stays a non-voter (odd)", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true), nv("d", "", true)}, voterChange{}},
		{"a fifth fills the set up to five", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true), nv("d", "", true), nv("e", "", true)},
			voterChange{promote: "d"}},
		{"never more than max", 3,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true), nv("d", "", true), nv("e", "", true)}, voterChange{}},
		{"a non-voter that is not caught up is not promoted", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true), nv("d", "", true), nv("e", "", false)}, voterChange{}},
		{"a lost voter is replaced by a healthy non-voter first", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", false), v("c", "", true), v("d", "", true), v("e", "", true), nv("f", "", true)},
			voterChange{promote: "f"}},
		{"then the lost voter is demoted", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", false), v("c", "", true), v("d", "", true), v("e", "", true), v("f", "", true)},
			voterChange{demote: "b"}},
		{"a lost voter with no replacement stays (reaping removes it later)", 3,
			[]voterView{leader(v("a", "", true)), v("b", "", false), v("c", "", true)}, voterChange{}},
		{"four healthy voters (an older cluster): one is demoted, never the leader", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", true), v("d", "", true)},
			voterChange{demote: "b"}},
		{"a lowered max demotes the surplus", 3,
			[]voterView{v("a", "", true), v("b", "", true), leader(v("c", "", true)), v("d", "", true), v("e", "", true)},
			voterChange{demote: "a"}},
		{"no quorum left: nothing to promote, and nothing changes", 3,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", false), v("d", "", false)}, voterChange{}},
		{"max 1: a down voter goes first", 1,
			[]voterView{leader(v("a", "", true)), v("b", "", true), v("c", "", false)}, voterChange{demote: "c"}},
		{"a zone without a voter gets the promotion", 5,
			[]voterView{leader(v("a", "z1", true)), v("b", "z1", true), v("c", "z2", true), nv("d", "z2", true), nv("e", "z3", true)},
			voterChange{promote: "e"}},
		{"voters spread: a zone with two voters gives one up to an empty zone", 3,
			[]voterView{leader(v("a", "z1", true)), v("b", "z1", true), v("c", "z2", true), nv("d", "z3", true)},
			voterChange{promote: "d"}},
		{"then the crowded zone's other voter is demoted", 3,
			[]voterView{leader(v("a", "z1", true)), v("b", "z1", true), v("c", "z2", true), v("d", "z3", true)},
			voterChange{demote: "b"}},
		{"spread is stable once every zone has a voter", 3,
			[]voterView{leader(v("a", "z1", true)), nv("b", "z1", true), v("c", "z2", true), v("d", "z3", true)}, voterChange{}},
		{"one voter: a lone node", 5, []voterView{leader(v("a", "", true))}, voterChange{}},
		{"two servers: one voter, one replica", 5,
			[]voterView{leader(v("a", "", true)), v("b", "", true)}, voterChange{demote: "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := planVoters(tc.servers, tc.max)
			if got.promote != tc.want.promote || got.demote != tc.want.demote {
				t.Fatalf("got promote %q demote %q (%s), want promote %q demote %q", got.promote, got.demote, got.why, tc.want.promote, tc.want.demote)
			}
		})
	}
}

func TestValidVoters(t *testing.T) {
	for n, ok := range map[int]bool{0: false, 1: true, 2: false, 3: true, 5: true, 7: true, 9: false} {
		if err := ValidVoters(n); (err == nil) != ok {
			t.Errorf("ValidVoters(%d) = %v", n, err)
		}
	}
}
