// Package testlog sends the log output of code under test to t.Log, so it
// shows with the test that produced it (go test -v, or on failure) and
// interleaves with the test's own messages.
//
// It must never write anywhere else (no files, no stderr) and never panic
// on output that comes after the test ended.
package testlog
