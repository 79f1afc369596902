package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errStreamEnded: the server ended an event stream.
var errStreamEnded = errors.New("the event stream ended")

// readEvents opens GET path?query as an event stream and hands each event
// to dispatch, in order, until dispatch fails, ctx ends, the stream stays
// silent past the idle timeout (WithTailIdleTimeout), or the server ends
// it (errStreamEnded). A non-200 answer is returned as its API error.
func (c *Client) readEvents(ctx context.Context, path string, query url.Values, dispatch func(event) error) error {
	return c.readEventsFrom(ctx, path, query, "", dispatch)
}

// readEventsFrom is readEvents that sends lastEventID, if not empty, as
// the Last-Event-ID header, as a reconnecting EventSource does. Every
// block of fields is dispatched, also one with no data (an "id:" alone
// moves the client's position without an event), so dispatch sees every
// id.
func (c *Client) readEventsFrom(ctx context.Context, path string, query url.Values, lastEventID string, dispatch func(event) error) error {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle *time.Timer
	if c.idleTail > 0 {
		idle = time.AfterFunc(c.idleTail, cancel)
		defer idle.Stop()
	}
	req, err := c.newRequest(connCtx, http.MethodGet, path, query, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		defer closeBody(resp.Body)
		return readError(resp)
	}
	defer resp.Body.Close() // no draining: the stream may never end
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	var ev event
	for sc.Scan() {
		if idle != nil {
			idle.Reset(c.idleTail)
		}
		line := sc.Text()
		if line == "" {
			if err := dispatch(ev); err != nil {
				return err
			}
			ev = event{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.typ = value
		case "data":
			ev.data = append(ev.data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stream: %w", err)
	}
	return errStreamEnded
}
