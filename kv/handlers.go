package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The kinds of event handler.
const (
	kindScript  = "script"
	kindWebhook = "webhook"
)

// maxEnvValue is the largest value passed in SHOAL_VALUE; larger values
// (and values with a NUL byte, which the environment cannot carry) are
// only on stdin, and SHOAL_VALUE_OMITTED=1 says so.
const maxEnvValue = 64 << 10

// maxHandlerOutput bounds how much of a script's output is kept for the
// failure log.
const maxHandlerOutput = 4 << 10

type handlerKind struct {
	kind string
	spec HandlerSpec
}

// HandlerEvent is the JSON a handler script reads on stdin and a webhook
// receives as its body.
type HandlerEvent struct {
	// Event is the event type.
	Event EventType `json:"event"`
	// Node is the node the event fired on (the one running the handler).
	Node string `json:"node"`
	// Key, Value, Version and UpdatedAt describe the new version; a
	// key_removed event has no value. They are absent for synced.
	Key       string   `json:"key,omitempty"`
	Value     *string  `json:"value,omitempty"`
	Version   *Version `json:"version,omitempty"`
	UpdatedAt string   `json:"updated_at,omitempty"`
	// Keys is the number of live keys, for synced.
	Keys *int `json:"keys,omitempty"`
}

func (k *KV) handlerEvent(ev Event) HandlerEvent {
	out := HandlerEvent{Event: ev.Type, Node: k.node}
	if ev.Type == EventSynced {
		n := ev.Keys
		out.Keys = &n
		return out
	}
	j := ev.Entry.json()
	v := j.Version
	out.Key, out.Value, out.Version, out.UpdatedAt = j.Key, j.Value, &v, j.UpdatedAt
	return out
}

// runner runs one handler for the events it matches, one at a time and in
// order, from its own bounded queue: a slow handler delays only itself and
// never gossip, and when it falls a whole queue behind, new events for it
// are dropped and counted.
type runner struct {
	k   *KV
	h   handlerKind
	sub *subscriber
	hc  *http.Client
}

func (k *KV) newRunner(h handlerKind) *runner {
	r := &runner{k: k, h: h, hc: &http.Client{}}
	match := func(ev Event) bool { return h.spec.Matches(ev.Type, ev.Entry.Key) }
	r.sub = k.bus.subscribe(match, k.cfg.HandlerQueue, func() {
		k.m.handlerRuns.WithLabelValues(h.kind, "dropped").Inc()
	})
	return r
}

// run handles events until Stop; a handler running then is cancelled.
func (r *runner) run() {
	defer r.k.bus.unsubscribe(r.sub)
	for {
		select {
		case <-r.k.ctx.Done():
			return
		case ev := <-r.sub.ch:
			r.handle(ev)
		}
	}
}

// handle runs the handler once and records the outcome.
func (r *runner) handle(ev Event) {
	k := r.k
	ctx, cancel := context.WithTimeout(k.ctx, k.cfg.HandlerTimeout)
	defer cancel()
	start := time.Now()
	var err error
	if r.h.kind == kindScript {
		err = r.runScript(ctx, ev)
	} else {
		err = r.postWebhook(ctx, ev)
	}
	k.m.handlerDuration.WithLabelValues(r.h.kind).Observe(time.Since(start).Seconds())
	result := "success"
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		result = "timeout"
	default:
		result = "failure"
	}
	k.m.handlerRuns.WithLabelValues(r.h.kind, result).Inc()
	if err != nil && k.ctx.Err() == nil {
		k.logger.Warn("kv event handler failed", "kind", r.h.kind, "handler", r.h.spec.Target, "event", ev.Type,
			"key", ev.Entry.Key, "result", result, "err", err)
	}
}

// runScript runs the script with the event in its environment and as JSON
// on stdin.
func (r *runner) runScript(ctx context.Context, ev Event) error {
	k := r.k
	body, err := json.Marshal(k.handlerEvent(ev))
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	cmd := exec.CommandContext(ctx, r.h.spec.Target)
	cmd.Env = append(os.Environ(),
		"SHOAL_EVENT="+string(ev.Type),
		"SHOAL_NODE="+k.node,
	)
	if ev.Type != EventSynced {
		cmd.Env = append(cmd.Env, "SHOAL_KEY="+ev.Entry.Key, "SHOAL_WRITER="+ev.Entry.Version.Node)
		v := ev.Entry.Value
		if len(v) <= maxEnvValue && !strings.ContainsRune(v, 0) {
			cmd.Env = append(cmd.Env, "SHOAL_VALUE="+v)
		} else {
			cmd.Env = append(cmd.Env, "SHOAL_VALUE_OMITTED=1")
		}
	}
	cmd.Stdin = bytes.NewReader(body)
	out := &limitedBuffer{max: maxHandlerOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // a child that keeps the pipes open cannot hold us
	if err := cmd.Run(); err != nil {
		// The output may echo values, which are never logged above debug.
		k.logger.Debug("kv event handler output", "handler", r.h.spec.Target, "output", out.String())
		return fmt.Errorf("run %s: %w", r.h.spec.Target, err)
	}
	return nil
}

// postWebhook POSTs the event JSON; any status outside 2xx is a failure.
// There is no retry: a webhook that must not miss changes should re-read
// the keys it cares about after a failure.
func (r *runner) postWebhook(ctx context.Context, ev Event) error {
	body, err := json.Marshal(r.k.handlerEvent(ev))
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.h.spec.Target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shoal-kv")
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }
