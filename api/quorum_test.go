package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"shoal/internal/testcluster"
)

func TestHealth_ReadyFailsWithoutQuorum(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithModules("log"))
	leader := c.Leader()
	for _, f := range c.Followers() {
		c.Kill(f.Index)
	}

	// The survivor steps down once it cannot reach a majority; until then it
	// may still believe it leads.
	for _, path := range []string{"/v1/health/ready", "/readyz"} {
		testcluster.Eventually(t, 30*time.Second, func() error {
			r, err := send(http.MethodGet, leader.URL()+path, nil, nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusServiceUnavailable {
				return fmt.Errorf("%s: got %v, want 503", path, r)
			}
			var body apiError
			if err := json.Unmarshal(r.body, &body); err != nil {
				return fmt.Errorf("%s: %v is not JSON: %w", path, r, err)
			}
			checks, _ := body.Error["checks"].(map[string]any)
			if body.Error["code"] != "not_ready" || checks["leader"] == nil {
				return fmt.Errorf("%s: got %v, want not_ready with a leader check", path, r)
			}
			if r.header.Get("Retry-After") == "" {
				return errors.New("503 without Retry-After")
			}
			return nil
		})
	}

	// Liveness never needs a leader.
	for _, path := range []string{"/v1/health/live", "/livez"} {
		if r := get(t, leader.URL()+path); r.status != http.StatusOK {
			t.Fatalf("%s: got %v, want 200 without a quorum", path, r)
		}
	}
	// The node still reports what it knows.
	st := decode[statusJSON](t, get(t, leader.URL()+"/v1/status"))
	if st.Leader != "" || st.Raft.State == "leader" || len(st.Raft.Voters) != 3 {
		t.Fatalf("got leader %q state %q voters %v, want no leader and the 3 voters", st.Leader, st.Raft.State, st.Raft.Voters)
	}
	// Requests that need the leader fail with 503 no_leader.
	wantError(t, call(t, http.MethodPost, leader.URL()+"/v1/raft/transfer-leadership", "", nil), http.StatusServiceUnavailable, "no_leader")
}
