package moduletest

import (
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"shoal/modules"
)

// Serve mounts m's routes under /v1, as the API does, on a test server on
// 127.0.0.1 with an ephemeral port. At cleanup it calls stop, then closes
// the server: stop must end the module's long-lived requests (event
// streams, waiting acquires), because closing the server waits for every
// request to finish.
func Serve(t testing.TB, m modules.Router, stop func()) *httptest.Server {
	t.Helper()
	r := chi.NewRouter()
	r.Route("/v1", m.Routes)
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		stop()
		srv.Close()
	})
	return srv
}
