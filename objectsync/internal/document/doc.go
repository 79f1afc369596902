// Package document is the JSON arithmetic of objectsync, shared by the
// module (server) and its Go client so that both compute byte-identical
// states: the canonical encoding of objects, patches and versions, RFC 6902
// patch application and diffing, version ordering, and id patterns.
//
// Canonical JSON here means: what encoding/json produces from the value
// json.Unmarshal decodes into an `any` — object keys sorted, no
// insignificant whitespace, HTML characters not escaped, every number an
// IEEE-754 double (as a browser's JSON.parse reads it). Applying the same
// patch to the same canonical bytes gives the same canonical bytes on
// every node and in every client, which is what lets the state machine
// apply patches deterministically and lets subscribers be compared with
// their master byte for byte.
//
// This package must never read a clock, use randomness or depend on map
// iteration order in what it returns, and never panic on any input (Apply
// recovers a panic of the patch library into an error).
package document
