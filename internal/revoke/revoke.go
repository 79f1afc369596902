// Package revoke carries, in a request's context, the signal that the
// credential the request was made with has been revoked: the API sets it
// (a scoped token of the acl module), and what outlives the request's
// handler (a websocket) watches it and ends.
package revoke

import "context"

type key struct{}

// With returns ctx carrying revoked, a channel closed when the request's
// credential is revoked.
func With(ctx context.Context, revoked <-chan struct{}) context.Context {
	return context.WithValue(ctx, key{}, revoked)
}

// From returns the channel With put in ctx, or nil (which never fires in
// a select) if there is none.
func From(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(key{}).(<-chan struct{})
	return ch
}
