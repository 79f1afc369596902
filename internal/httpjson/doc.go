// Package httpjson holds shoal's one HTTP error shape and the helpers that
// read and write JSON bodies.
//
// Every failure a client sees is {"error":{"code":"snake_case","message":"..."}}
// with a status that says what kind of failure it is. Packages that produce
// client-facing errors (consensus, the modules) return *Error values, so the
// status and code travel with the error, also across a forwarded write, and
// errors.Is compares them by code.
//
// This package must stay a leaf: it imports only the standard library, so
// that consensus and every module can use it without import cycles.
package httpjson
