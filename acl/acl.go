package acl

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"shoal/modules"
)

func init() {
	modules.Register(modules.Info{
		ID:  "acl",
		New: func() modules.Module { return new(ACL) },
		NewConfig: func() modules.Config {
			c := DefaultConfig()
			return &c
		},
	})
}

// ACL is the acl module. Its zero value is ready for Provision.
//
// ApplyCommand, Snapshot and Restore run on the FSM goroutine and hold mu
// for writing only while they change the state; Authenticate, the HTTP
// handlers and the leader's expiry loop hold it for reading. Revocation
// callbacks run on the FSM goroutine after mu is released.
type ACL struct {
	host   modules.Host
	cfg    Config
	logger *slog.Logger
	m      *metrics

	once sync.Once // initialises what the zero value lacks

	mu sync.RWMutex
	st *state // replaced whole by Restore

	revokeMu  sync.Mutex
	onRevoked []func(accessor string)

	life    sync.Mutex
	ctx     context.Context // cancelled by Stop
	cancel  context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
	expiry  modules.LeaderLoop // the expiry loop, while this node leads
	leading atomic.Bool

	// now is the clock of Authenticate and the expiry loop (tests replace
	// it before Provision).
	now func() time.Time
}

func (a *ACL) init() {
	a.once.Do(func() {
		a.st = newState()
		a.ctx, a.cancel = context.WithCancel(context.Background())
		if a.logger == nil {
			a.logger = slog.New(slog.DiscardHandler)
		}
		if a.now == nil {
			a.now = time.Now
		}
		if a.cfg == (Config{}) {
			a.cfg = DefaultConfig()
		}
	})
}

// ID returns "acl".
func (a *ACL) ID() string { return "acl" }

// Provision reads the configuration and registers the metrics. It starts
// nothing.
func (a *ACL) Provision(host modules.Host) error {
	cfg, err := modules.ConfigAs(host.Config(), DefaultConfig(), ErrInvalidConfig)
	if err != nil {
		return fmt.Errorf("acl module: %w", err)
	}
	m, err := newMetrics(host.Registerer())
	if err != nil {
		return fmt.Errorf("acl module: %w", err)
	}
	a.host, a.logger, a.cfg, a.m = host, host.Logger(), cfg, m
	a.init()
	a.m.tokens.Set(0)
	return nil
}

// Start does nothing of its own: the expiry loop runs only while this
// node leads (LeadershipChanged).
func (a *ACL) Start(ctx context.Context) error {
	a.init()
	return nil
}

// Stop ends the expiry loop and waits for it and for requests in flight,
// bounded by ctx. Later requests are refused with 503.
func (a *ACL) Stop(ctx context.Context) error {
	a.init()
	a.life.Lock()
	if !a.stopped {
		a.stopped = true
		a.cancel()
		a.expiry.Stop()
	}
	a.life.Unlock()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop acl module: %w", ctx.Err())
	}
}

// track counts a request or goroutine Stop waits for; false once Stop
// has begun.
func (a *ACL) track() bool {
	a.init()
	a.life.Lock()
	defer a.life.Unlock()
	if a.stopped {
		return false
	}
	a.wg.Add(1)
	return true
}

func (a *ACL) untrack() { a.wg.Done() }

// Tag returns the module's command tag.
func (a *ACL) Tag() modules.Tag { return Tag }

// Ops implements modules.RaftHandler.
func (a *ACL) Ops() []byte { return []byte{opCreate, opRevoke, opExpire} }

// ApplyCommand applies one committed command. It is called from the FSM
// goroutine only and never blocks, except on the revocation callbacks,
// which must not block. A malformed command or an unknown op is an error
// and changes nothing; so is a refused one (name taken, unknown token),
// whose error is the *httpjson.Error the client gets.
func (a *ACL) ApplyCommand(cmd modules.Command) ([]byte, error) {
	a.init()
	now := cmd.Time.UnixNano()
	var (
		res  []byte
		err  error
		gone []string
	)
	switch cmd.Op {
	case opCreate:
		var c createCmd
		if c, err = decodeCreate(cmd.Payload); err != nil {
			break
		}
		a.mu.Lock()
		var e *entry
		if e, err = a.st.create(c, now); err == nil {
			res = encodeCreateResult(e.created, e.expires)
		}
		a.mu.Unlock()
	case opRevoke:
		var c revokeCmd
		if c, err = decodeRevoke(cmd.Payload); err != nil {
			break
		}
		a.mu.Lock()
		var e *entry
		if e, err = a.st.revoke(c); err == nil {
			res, gone = encodeRevokeResult(e.accessor, e.name), []string{e.accessor}
		}
		a.mu.Unlock()
	case opExpire:
		var c expireCmd
		if c, err = decodeExpire(cmd.Payload); err != nil {
			break
		}
		a.mu.Lock()
		gone = a.st.expire(c, now)
		a.mu.Unlock()
		res = encodeExpireResult(len(gone))
	default:
		err = fmt.Errorf("op %d: %w", cmd.Op, ErrUnknownOp)
	}
	if a.m != nil {
		if c := a.m.commands[cmd.Op]; c != nil {
			c.Inc()
		}
	}
	a.after(gone)
	if err != nil {
		return nil, fmt.Errorf("apply acl command at raft index %d: %w", cmd.Index, err)
	}
	return res, nil
}

// after updates the gauge and tells the revocation callbacks about the
// tokens that are gone.
func (a *ACL) after(gone []string) {
	if a.m != nil {
		a.mu.RLock()
		n := len(a.st.byAccessor)
		a.mu.RUnlock()
		a.m.tokens.Set(float64(n))
	}
	if len(gone) == 0 {
		return
	}
	a.revokeMu.Lock()
	fns := slices.Clone(a.onRevoked)
	a.revokeMu.Unlock()
	for _, accessor := range gone {
		for _, fn := range fns {
			fn(accessor)
		}
	}
}

// OnRevoke registers fn to be called with the accessor id of every token
// that leaves this node's state: revoked, removed by the expiry loop, or
// absent from a restored snapshot. It is called on every node, from the
// FSM goroutine, after the token is gone (Authenticate already refuses
// it): fn must not block (hand the id to a goroutine, say, to close the
// token's open streams). Register before Start.
func (a *ACL) OnRevoke(fn func(accessor string)) {
	a.revokeMu.Lock()
	a.onRevoked = append(a.onRevoked, fn)
	a.revokeMu.Unlock()
}

// Snapshot encodes the state on the FSM goroutine (at most 10,000 tokens).
func (a *ACL) Snapshot() (modules.Snapshot, error) {
	a.init()
	a.mu.RLock()
	defer a.mu.RUnlock()
	return snapshot{b: a.st.encode()}, nil
}

// Restore replaces the whole state with a snapshot Persist wrote; an
// empty reader is the empty state. On error the state is unchanged. The
// tokens of the old state that the new one lacks are reported to the
// revocation callbacks.
func (a *ACL) Restore(r io.Reader) error {
	a.init()
	st, err := readSnapshot(r)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.st
	a.st = st
	a.mu.Unlock()
	var gone []string
	for _, e := range old.sorted() {
		if n := st.byAccessor[e.accessor]; n == nil || n.hash != e.hash {
			gone = append(gone, e.accessor)
		}
	}
	a.after(gone)
	return nil
}

// snapshot is the persisted state at one point of the log.
type snapshot struct{ b []byte }

// Persist writes the snapshot to w.
func (s snapshot) Persist(w io.Writer) error {
	if _, err := w.Write(s.b); err != nil {
		return fmt.Errorf("persist acl snapshot: %w", err)
	}
	return nil
}

// Release does nothing: the snapshot holds only memory.
func (s snapshot) Release() {}

// Authenticate returns the token whose secret is secret, if this node's
// state holds it and it has not expired (by this node's clock). It is
// safe for concurrent use and never blocks on Raft: a token created
// through another node is known here once this node applied its create.
//
// Only the SHA-256 of each secret is stored, in a map keyed by it. The
// lookup is not constant-time, and need not be: its timing depends on
// the hash of the guess, which tells an attacker nothing about any stored
// secret (finding a secret from its hash means inverting SHA-256 on 256
// random bits). The final comparison is constant-time anyway, so the
// code stays safe if the map is ever replaced by a search.
func (a *ACL) Authenticate(secret string) (Token, bool) {
	a.init()
	if secret == "" || len(secret) > maxSecretLen {
		return Token{}, false
	}
	h := sha256.Sum256([]byte(secret))
	a.mu.RLock()
	e := a.st.byHash[h]
	var t Token
	ok := e != nil && subtle.ConstantTimeCompare(e.hash[:], h[:]) == 1
	if ok {
		t = e.token()
	}
	a.mu.RUnlock()
	if !ok || t.Expired(a.now()) {
		return Token{}, false
	}
	return t, true
}

// maxSecretLen bounds what Authenticate hashes (a secret is 43 bytes).
const maxSecretLen = 256

// newSecret returns a new secret (32 random bytes, base64url without
// padding) and its hash.
func newSecret() (string, [hashLen]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	s := base64.RawURLEncoding.EncodeToString(b[:])
	return s, sha256.Sum256([]byte(s))
}

// newAccessor returns a random UUID (version 4) in lowercase hex.
func newAccessor() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var sb strings.Builder
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			sb.WriteByte('-')
		}
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&0xf])
	}
	return sb.String()
}

// CreateRequest is what creating a token takes.
type CreateRequest struct {
	Name  string
	Rules []Rule
	// TTL is the token's lifetime; 0 means it never expires.
	TTL time.Duration
}

// Create creates a token through Raft and returns it with its secret,
// which exists nowhere else: only its hash is committed. This node makes
// the secret and the accessor id. Errors are *httpjson.Error values (400
// for an invalid request, 409 for a taken name or a full cluster) or the
// consensus errors of Raft.Apply (503 without a leader).
func (a *ACL) Create(ctx context.Context, req CreateRequest) (Token, string, error) {
	if err := a.validate(req); err != nil {
		return Token{}, "", err
	}
	if !a.track() {
		return Token{}, "", ErrShuttingDown
	}
	defer a.untrack()
	secret, hash := newSecret()
	c := createCmd{accessor: newAccessor(), name: req.Name, hash: hash, ttl: req.TTL, rules: req.Rules}
	applied, err := a.host.Raft().Apply(ctx, opCreate, encodeCreate(c))
	if err != nil {
		return Token{}, "", err
	}
	created, expires, err := decodeCreateResult(applied.Result)
	if err != nil {
		return Token{}, "", err
	}
	e := entry{accessor: c.accessor, name: c.name, rules: c.rules, created: created, expires: expires}
	return e.token(), secret, nil
}

// validate checks a create request where it enters.
func (a *ACL) validate(req CreateRequest) error {
	switch {
	case !validName(req.Name):
		return ErrInvalidName.WithMessage("invalid token name %q: a name is 1 to %d bytes of letters, digits, '.', '_' and '-', not . or .., and not shaped like an accessor id", modules.Echo(req.Name), maxNameLen)
	case len(req.Rules) == 0 || len(req.Rules) > maxRules:
		return ErrInvalidRules.WithMessage("a token has 1 to %d rules, got %d", maxRules, len(req.Rules))
	case req.TTL < 0 || (req.TTL != 0 && req.TTL < minTTL) || req.TTL > a.cfg.maxTTL():
		return ErrInvalidTTL.WithMessage("the ttl %s is outside %s to %s (or 0: never expires)", req.TTL, minTTL, a.cfg.maxTTL())
	}
	for i, r := range req.Rules {
		// A Rule built in Go, not parsed, must still be one ParseRule
		// accepts: the state machine reads only canonical rules.
		if p, err := ParseRule(r.String()); err != nil || p != r {
			return ErrInvalidRule.WithMessage("rule %d (%q) is not a valid rule", i, r.String()).WithDetail("rule", i)
		}
	}
	return nil
}

// Revoke removes the token with accessor id or name id through Raft and
// returns its accessor id and name. ErrTokenNotFound (404) when none has
// it.
func (a *ACL) Revoke(ctx context.Context, id string) (accessor, name string, err error) {
	c := revokeCmd{id: id}
	switch {
	case validAccessor(id):
	case validName(id):
		c.byName = true
	default:
		return "", "", ErrTokenNotFound
	}
	if !a.track() {
		return "", "", ErrShuttingDown
	}
	defer a.untrack()
	applied, err := a.host.Raft().Apply(ctx, opRevoke, encodeRevoke(c))
	if err != nil {
		return "", "", err
	}
	return decodeRevokeResult(applied.Result)
}

// Tokens returns this node's tokens in name order (expired ones the
// leader has not removed yet included).
func (a *ACL) Tokens() []Token {
	a.init()
	a.mu.RLock()
	out := make([]Token, 0, len(a.st.byAccessor))
	for _, e := range a.st.byAccessor {
		out = append(out, e.token())
	}
	a.mu.RUnlock()
	slices.SortFunc(out, func(x, y Token) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// Token returns the token with accessor id or name id from this node's
// state.
func (a *ACL) Token(id string) (Token, bool) {
	a.init()
	a.mu.RLock()
	defer a.mu.RUnlock()
	e := a.st.byAccessor[id]
	if e == nil {
		e = a.st.byName[id]
	}
	if e == nil {
		return Token{}, false
	}
	return e.token(), true
}

// Status is the module's section of GET /v1/status.
type Status struct {
	Tokens int `json:"tokens"`
	// Expiring reports that this node leads and runs the expiry loop.
	Expiring bool `json:"expiring"`
}

// Status returns the number of tokens and whether this node expires them.
func (a *ACL) Status() any {
	a.init()
	a.mu.RLock()
	n := len(a.st.byAccessor)
	a.mu.RUnlock()
	return Status{Tokens: n, Expiring: a.leading.Load()}
}

var (
	_ modules.Module         = (*ACL)(nil)
	_ modules.Router         = (*ACL)(nil)
	_ modules.RaftHandler    = (*ACL)(nil)
	_ modules.LeaderObserver = (*ACL)(nil)
	_ modules.StatusReporter = (*ACL)(nil)
)
