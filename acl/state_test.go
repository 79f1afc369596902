package acl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal/internal/moduletest"
	"shoal/modules"
)

func persist(t testing.TB, a *ACL) []byte {
	t.Helper()
	s, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var buf bytes.Buffer
	if err := s.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestACL_CreateAuthenticateRevoke(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	var mu sync.Mutex
	var revoked []string
	n.acl.OnRevoke(func(a string) {
		mu.Lock()
		revoked = append(revoked, a)
		mu.Unlock()
	})
	ctx := context.Background()
	tok, secret, err := n.acl.Create(ctx, CreateRequest{Name: "ci", Rules: mustRules(t, "kv:write:ci/", "operator")})
	if err != nil {
		t.Fatal(err)
	}
	if !validAccessor(tok.AccessorID) || tok.Name != "ci" || !tok.Created.Equal(testEpoch) || !tok.Expires.IsZero() {
		t.Fatalf("created %+v", tok)
	}
	if len(secret) != 43 || strings.ContainsAny(secret, "+/=") {
		t.Fatalf("secret %q is not 32 bytes of unpadded base64url", secret)
	}
	// Only the hash is in the state: the secret is nowhere in a snapshot.
	if snap := persist(t, n.acl); bytes.Contains(snap, []byte(secret)) {
		t.Fatal("the snapshot holds the secret")
	}
	got, ok := n.acl.Authenticate(secret)
	if !ok || got.AccessorID != tok.AccessorID || !slices.Equal(got.Rules, tok.Rules) {
		t.Fatalf("Authenticate = %+v, %v", got, ok)
	}
	for _, bad := range []string{"", secret[:42], secret + "x", strings.Repeat("a", 10000)} {
		if _, ok := n.acl.Authenticate(bad); ok {
			t.Fatalf("Authenticate(%q) succeeded", bad[:min(len(bad), 50)])
		}
	}
	if _, _, err := n.acl.Create(ctx, CreateRequest{Name: "ci", Rules: mustRules(t, "kv:read:*")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name: %v, want ErrNameTaken", err)
	}
	if moduletest.MetricValue(t, n.reg, "shoal_acl_tokens") != 1 {
		t.Fatal("shoal_acl_tokens is not 1")
	}
	// Revoke by name.
	acc, name, err := n.acl.Revoke(ctx, "ci")
	if err != nil || acc != tok.AccessorID || name != "ci" {
		t.Fatalf("Revoke = %q %q %v", acc, name, err)
	}
	if _, ok := n.acl.Authenticate(secret); ok {
		t.Fatal("a revoked token still authenticates")
	}
	if _, _, err := n.acl.Revoke(ctx, tok.AccessorID); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoke again: %v, want ErrTokenNotFound", err)
	}
	if _, _, err := n.acl.Revoke(ctx, "not a name!"); !errors.Is(err, ErrTokenNotFound) {
		t.Fatalf("revoke of an invalid id: %v, want ErrTokenNotFound", err)
	}
	// Revoke by accessor.
	tok2, _, err := n.acl.Create(ctx, CreateRequest{Name: "ci", Rules: mustRules(t, "kv:read:*")})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.acl.Revoke(ctx, tok2.AccessorID); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(revoked, []string{tok.AccessorID, tok2.AccessorID}) {
		t.Fatalf("OnRevoke saw %v", revoked)
	}
	for op, want := range map[string]float64{"create": 3, "revoke": 3, "expire": 0} {
		if got := moduletest.MetricValue(t, n.reg, "shoal_acl_commands_total", "op", op); got != want {
			t.Errorf("shoal_acl_commands_total{op=%q} = %v, want %v", op, got, want)
		}
	}
}

func TestACL_CreateValidation(t *testing.T) {
	n := newTestNode(t, Config{ExpiryInterval: time.Minute, MaxTTL: time.Hour})
	ctx := context.Background()
	rules := mustRules(t, "kv:read:*")
	tests := []struct {
		name string
		req  CreateRequest
		want error
	}{
		{"empty name", CreateRequest{Rules: rules}, ErrInvalidName},
		{"long name", CreateRequest{Name: strings.Repeat("n", 129), Rules: rules}, ErrInvalidName},
		{"name with slash", CreateRequest{Name: "a/b", Rules: rules}, ErrInvalidName},
		{"name like an accessor", CreateRequest{Name: "0b9c6b0e-8f3f-4d4e-9a55-1c9d3c8a1f00", Rules: rules}, ErrInvalidName},
		{"dot dot", CreateRequest{Name: "..", Rules: rules}, ErrInvalidName},
		{"no rules", CreateRequest{Name: "a"}, ErrInvalidRules},
		{"65 rules", CreateRequest{Name: "a", Rules: slices.Repeat(rules, 65)}, ErrInvalidRules},
		{"rule built wrong", CreateRequest{Name: "a", Rules: []Rule{{Module: "kv", Action: ActionRead, Prefix: "a*"}}}, ErrInvalidRule},
		{"rule with no action", CreateRequest{Name: "a", Rules: []Rule{{Module: "kv"}}}, ErrInvalidRule},
		{"short ttl", CreateRequest{Name: "a", Rules: rules, TTL: time.Millisecond}, ErrInvalidTTL},
		{"negative ttl", CreateRequest{Name: "a", Rules: rules, TTL: -time.Second}, ErrInvalidTTL},
		{"ttl over max", CreateRequest{Name: "a", Rules: rules, TTL: 2 * time.Hour}, ErrInvalidTTL},
	}
	for _, tt := range tests {
		if _, _, err := n.acl.Create(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if len(n.acl.Tokens()) != 0 {
		t.Fatal("a refused create left a token")
	}
	if _, _, err := n.acl.Create(ctx, CreateRequest{Name: "a", Rules: slices.Repeat(rules, 64), TTL: time.Hour}); err != nil {
		t.Fatalf("64 rules and the max ttl: %v", err)
	}
}

func TestACL_ExpiryRefusedAtOnceRemovedByLeader(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	ctx := context.Background()
	tok, secret, err := n.acl.Create(ctx, CreateRequest{Name: "short", Rules: mustRules(t, "kv:read:*"), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Expires.Equal(testEpoch.Add(time.Minute)) {
		t.Fatalf("expires %v", tok.Expires)
	}
	_, keep, err := n.acl.Create(ctx, CreateRequest{Name: "forever", Rules: mustRules(t, "kv:read:*")})
	if err != nil {
		t.Fatal(err)
	}
	n.advance(59 * time.Second)
	if _, ok := n.acl.Authenticate(secret); !ok {
		t.Fatal("refused before its expiry")
	}
	// An expire command whose time is before the expiry removes nothing.
	n.acl.expireDue(ctx)
	if len(n.acl.Tokens()) != 2 {
		t.Fatal("expired early")
	}
	if _, err := n.apply(opExpire, encodeExpire(expireCmd{accessors: []string{tok.AccessorID}})); err != nil {
		t.Fatal(err)
	}
	if len(n.acl.Tokens()) != 2 {
		t.Fatal("an expire command before the expiry removed the token")
	}
	n.advance(time.Second)
	if _, ok := n.acl.Authenticate(secret); ok {
		t.Fatal("an expired token still authenticates")
	}
	if _, ok := n.acl.Authenticate(keep); !ok {
		t.Fatal("a token without expiry is refused")
	}
	n.acl.expireDue(ctx)
	if got := n.acl.Tokens(); len(got) != 1 || got[0].Name != "forever" {
		t.Fatalf("after expiry: %+v", got)
	}
	if got := moduletest.MetricValue(t, n.reg, "shoal_acl_commands_total", "op", "expire"); got != 2 {
		t.Fatalf("expire commands: %v", got)
	}
}

func TestACL_LeaderLoopExpires(t *testing.T) {
	n := newTestNode(t, Config{ExpiryInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, _, err := n.acl.Create(ctx, CreateRequest{Name: "short", Rules: mustRules(t, "kv:read:*"), TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	n.acl.LeadershipChanged(true)
	n.advance(2 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for len(n.acl.Tokens()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leader loop did not expire the token")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !n.acl.Status().(Status).Expiring {
		t.Fatal("status does not report the expiry loop")
	}
	n.acl.LeadershipChanged(false)
	n.acl.LeadershipChanged(true) // a new loop after the old one
	n.acl.LeadershipChanged(false)
}

func TestACL_TooManyTokens(t *testing.T) {
	st := newState()
	rules := mustRules(t, "kv:read:*")
	for i := 0; i < maxTokens; i++ {
		c := createCmd{accessor: fmt.Sprintf("00000000-0000-4000-8000-%012x", i), name: fmt.Sprintf("t%d", i), rules: rules}
		c.hash[0], c.hash[1], c.hash[2] = byte(i), byte(i>>8), 1
		if _, err := st.create(c, 1); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	c := createCmd{accessor: "ffffffff-0000-4000-8000-000000000000", name: "one-more", rules: rules}
	if _, err := st.create(c, 1); !errors.Is(err, ErrTooManyTokens) {
		t.Fatalf("token %d: %v, want ErrTooManyTokens", maxTokens+1, err)
	}
	// The full state survives a snapshot.
	st2, err := decodeSnapshot(st.encode())
	if err != nil || len(st2.byAccessor) != maxTokens {
		t.Fatalf("restore of a full state: %d tokens, %v", len(st2.byAccessor), err)
	}
}

// TestACL_SnapshotRestore: a restored node holds the same tokens, the
// same bytes, authenticates the same secrets, and reports the tokens the
// snapshot lacks as revoked.
func TestACL_SnapshotRestore(t *testing.T) {
	n := newTestNode(t, DefaultConfig())
	ctx := context.Background()
	secrets := map[string]string{}
	for i, ttl := range []time.Duration{0, time.Hour, 0} {
		tok, s, err := n.acl.Create(ctx, CreateRequest{Name: fmt.Sprintf("t%d", i), Rules: mustRules(t, "kv:read:x/", "operator"), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		secrets[tok.AccessorID] = s
	}
	snap := persist(t, n.acl)

	other := newTestNode(t, DefaultConfig())
	extra, _, err := other.acl.Create(ctx, CreateRequest{Name: "extra", Rules: mustRules(t, "kv:read:*")})
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	other.acl.OnRevoke(func(a string) { gone = append(gone, a) })
	if err := other.acl.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gone, []string{extra.AccessorID}) {
		t.Fatalf("OnRevoke after restore: %v, want %v", gone, extra.AccessorID)
	}
	if got := persist(t, other.acl); !bytes.Equal(got, snap) {
		t.Fatal("a restored state persists to other bytes")
	}
	if !slices.EqualFunc(other.acl.Tokens(), n.acl.Tokens(), tokensEqual) {
		t.Fatalf("tokens differ:\n%+v\n%+v", other.acl.Tokens(), n.acl.Tokens())
	}
	for acc, s := range secrets {
		if tok, ok := other.acl.Authenticate(s); !ok || tok.AccessorID != acc {
			t.Fatalf("secret of %s not accepted after restore", acc)
		}
	}
	if moduletest.MetricValue(t, other.reg, "shoal_acl_tokens") != 3 {
		t.Fatal("gauge not updated by restore")
	}
	// An empty snapshot is the empty state; a bad one changes nothing.
	if err := other.acl.Restore(bytes.NewReader(append(slices.Clone(snap), 0))); !errors.Is(err, ErrMalformedSnapshot) {
		t.Fatalf("trailing byte: %v", err)
	}
	if len(other.acl.Tokens()) != 3 {
		t.Fatal("a refused restore changed the state")
	}
	if err := other.acl.Restore(bytes.NewReader(nil)); err != nil || len(other.acl.Tokens()) != 0 {
		t.Fatalf("empty restore: %v, %d tokens", err, len(other.acl.Tokens()))
	}
}

func tokensEqual(a, b Token) bool {
	return a.AccessorID == b.AccessorID && a.Name == b.Name && slices.Equal(a.Rules, b.Rules) &&
		a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires)
}

// TestACL_Deterministic applies the same commands to two instances, one
// of them restored from a snapshot midway: they end in the same bytes
// and give the same results.
func TestACL_Deterministic(t *testing.T) {
	cmds := scenario()
	a, b := new(ACL), new(ACL)
	for i, c := range cmds {
		cmd := modules.Command{Index: uint64(i + 1), Time: testEpoch.Add(time.Duration(i) * time.Minute), Op: c.op, Payload: c.payload}
		ra, ea := a.ApplyCommand(cmd)
		rb, eb := b.ApplyCommand(cmd)
		if !bytes.Equal(ra, rb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("command %d: %x %v vs %x %v", i, ra, ea, rb, eb)
		}
		if i == len(cmds)/2 {
			c := new(ACL)
			if err := c.Restore(bytes.NewReader(persist(t, b))); err != nil {
				t.Fatal(err)
			}
			b = c
		}
	}
	if !bytes.Equal(persist(t, a), persist(t, b)) {
		t.Fatal("the two instances diverged")
	}
}

type seedCmd struct {
	op      byte
	payload []byte
}

// scenario is a sequence of commands touching every op and outcome.
func scenario() []seedCmd {
	acc := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	hash := func(i int) (h [hashLen]byte) { h[0] = byte(i); h[31] = 7; return h }
	rules := func(ss ...string) []Rule {
		var out []Rule
		for _, s := range ss {
			r, _ := ParseRule(s)
			out = append(out, r)
		}
		return out
	}
	return []seedCmd{
		{opCreate, encodeCreate(createCmd{accessor: acc(1), name: "admin", hash: hash(1), rules: rules("operator", "*:admin:*")})},
		{opCreate, encodeCreate(createCmd{accessor: acc(2), name: "ci", hash: hash(2), ttl: time.Minute, rules: rules("kv:write:ci/")})},
		{opCreate, encodeCreate(createCmd{accessor: acc(3), name: "ci", hash: hash(3), rules: rules("kv:read:*")})},  // name taken
		{opCreate, encodeCreate(createCmd{accessor: acc(1), name: "dup", hash: hash(4), rules: rules("kv:read:*")})}, // accessor taken
		{opCreate, encodeCreate(createCmd{accessor: acc(5), name: "reader", hash: hash(5), ttl: time.Hour, rules: rules("logs:read:orders", "cluster:read:*")})},
		{opRevoke, encodeRevoke(revokeCmd{byName: true, id: "nobody"})},
		{opExpire, encodeExpire(expireCmd{accessors: []string{acc(2), acc(5), acc(9)}})},
		{opExpire, encodeExpire(expireCmd{accessors: []string{acc(2)}})}, // already gone: nothing to do
		{opRevoke, encodeRevoke(revokeCmd{id: acc(1)})},
		{opCreate, encodeCreate(createCmd{accessor: acc(6), name: "files", hash: hash(6), ttl: time.Second, rules: rules("files:write:data/", "objects:read:room/")})},
		{opRevoke, encodeRevoke(revokeCmd{byName: true, id: "reader"})},
		{opExpire, encodeExpire(expireCmd{accessors: []string{acc(6)}})},
	}
}
