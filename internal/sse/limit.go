package sse

import (
	"context"
	"net/http"
	"sync"
	"time"

	"shoal/internal/httpjson"
)

// ErrTooManyStreams: the node, or this client, has as many event streams
// open as it may (429, retry after a second).
var ErrTooManyStreams = &httpjson.Error{Status: http.StatusTooManyRequests, Code: "too_many_streams",
	Message: "too many event streams are open", RetryAfter: time.Second}

// Limiter bounds the event streams open on a node, across every module's
// Streams: in all, and per client (a token, or an address without one).
// A stream that a client opens and never reads still costs a goroutine
// and buffers until the write timeout drops it; the limiter keeps a crowd
// of them from taking the node's memory. Its methods are safe for
// concurrent use.
type Limiter struct {
	max, perClient int
	// OnRefused, if set, is called (outside the lock) for each refusal.
	OnRefused func(perClient bool)

	mu       sync.Mutex
	open     int
	byClient map[string]int
}

// NewLimiter returns a Limiter of max streams in all and perClient per
// client; 0 means no bound for either.
func NewLimiter(max, perClient int) *Limiter {
	return &Limiter{max: max, perClient: perClient, byClient: map[string]int{}}
}

// Open returns the number of streams open now.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Limiter) acquire(client string) error {
	l.mu.Lock()
	var err error
	perClient := false
	switch {
	case l.max > 0 && l.open >= l.max:
		err = ErrTooManyStreams.WithMessage("this node has %d event streams open, its limit", l.max)
	case l.perClient > 0 && l.byClient[client] >= l.perClient:
		err, perClient = ErrTooManyStreams.WithMessage("this client has %d event streams open on this node, its limit", l.perClient), true
	default:
		l.open++
		l.byClient[client]++
	}
	l.mu.Unlock()
	if err != nil && l.OnRefused != nil {
		l.OnRefused(perClient)
	}
	return err
}

func (l *Limiter) release(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byClient[client]--; l.byClient[client] <= 0 {
		delete(l.byClient, client)
	}
}

type limitKey struct{}

type limitSlot struct {
	l      *Limiter
	client string
}

// WithLimiter returns ctx carrying l for the streams a request opens, the
// client named by client (never logged: it may be a token).
func WithLimiter(ctx context.Context, l *Limiter, client string) context.Context {
	return context.WithValue(ctx, limitKey{}, limitSlot{l: l, client: client})
}

func limiterFrom(ctx context.Context) (limitSlot, bool) {
	s, ok := ctx.Value(limitKey{}).(limitSlot)
	return s, ok && s.l != nil
}

// Reserve counts a long-lived connection that is not a Stream (a
// websocket) against the Limiter ctx carries, if any, as a stream: the
// node's and the client's limits are one budget for both. It returns the
// function that gives the slot back (idempotent), or ErrTooManyStreams.
func Reserve(ctx context.Context) (release func(), err error) {
	slot, ok := limiterFrom(ctx)
	if !ok {
		return func() {}, nil
	}
	if err := slot.l.acquire(slot.client); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { slot.l.release(slot.client) }) }, nil
}
