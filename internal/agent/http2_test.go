package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"shoal/client"
	"shoal/internal/testcluster"
)

// TestHTTP_ServesHTTP2WithPriorKnowledgeAndHTTP1 checks both protocols on
// one API port: curl's HTTP/1.1 and the Go client's h2c, many requests on
// one connection.
func TestHTTP_ServesHTTP2WithPriorKnowledgeAndHTTP1(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithModules("log"))
	n := c.Node(0)
	for _, tc := range []struct {
		name  string
		proto func(*http.Protocols)
		major int
	}{
		{"http/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }, 1},
		{"h2c", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }, 2},
	} {
		p := new(http.Protocols)
		tc.proto(p)
		tr := &http.Transport{Protocols: p}
		resp, err := (&http.Client{Transport: tr}).Get(n.URL() + "/v1/health/live")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.ProtoMajor != tc.major || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s %d", tc.name, resp.Proto, resp.StatusCode)
		}
	}

	cl, err := client.New(n.URL(), client.WithHTTP2())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := cl.Publish(context.Background(), "h2", fmt.Sprint(i), json.RawMessage(`1`)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("publish over h2c: %v", err)
	}
	page, err := cl.Read(context.Background(), "h2", 1, 100, true)
	if err != nil || len(page.Entries) != 50 {
		t.Fatalf("read over h2c: %d entries, %v", len(page.Entries), err)
	}
}
