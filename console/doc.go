// Package console is the web console every node serves at /ui/: an
// embedded single-page app (HTML, CSS and plain ES modules, no build
// step, no third-party code) that shows the cluster, logs, kv, locks,
// objects and file replication live.
//
// The console holds no data and no state of its own. Its pages and assets
// are public (a browser loads them before it has a token); everything it
// shows comes from the node's own API, called by the page through
// /ui/api/..., which Wrap turns into the same API request with the token
// from the console's cookie as its bearer token, ahead of every API
// middleware (cross-origin protection, limits, authentication, metrics).
//
// It must never serve cluster data outside /ui/api, never put the token
// where page scripts can read it (the cookie is HttpOnly and scoped to
// /ui/), and never call another node: a browser watches the node it
// loaded the console from.
package console
