package objectsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
	"shoal/objectsync/internal/document"
)

// The write path: the node that takes a write (from a websocket master or
// the REST API) validates it, computes the patch against its own current
// state once, and submits the patch (or the whole object) to Raft; every
// node applies the same command and fans the same frame out.

// writeTimeout bounds one write, retries included.
const writeTimeout = 15 * time.Second

// maxWriteAttempts bounds the retries of a write whose base moved (this
// node's state lagged the leader's): each retry first catches up.
const maxWriteAttempts = 4

func (o *ObjectSync) raft() (modules.Raft, error) {
	if o.host == nil || o.host.Raft() == nil {
		return nil, ErrShuttingDown
	}
	return o.host.Raft(), nil
}

// checkID validates an id a client wants to write.
func checkID(id string) error {
	switch {
	case !document.ValidID(id):
		return ErrInvalidID.WithMessage("id %q is not 1 to %d bytes of UTF-8 without control characters or '*'", truncate(id), document.MaxIDLen)
	case strings.HasPrefix(id, reservedPrefix):
		return ErrReservedID.WithMessage("id %q is reserved: ids starting with %q are read-only", truncate(id), reservedPrefix)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func parseVersion(raw []byte, field string) (document.Version, error) {
	v, err := document.ParseVersion(raw)
	if err != nil {
		return v, ErrInvalidVersion.WithMessage("%s: %s", field, err.Error()).WithDetail("field", field)
	}
	return v, nil
}

// set writes the whole object at version ver, as master owner ("" for a
// REST write). It submits a patch when one is smaller than the object.
func (o *ObjectSync) set(ctx context.Context, id, owner string, ver document.Version, raw []byte) (uint64, error) {
	data, err := document.Object(raw, o.cfg.MaxSize)
	switch {
	case errors.Is(err, document.ErrTooLarge):
		return 0, ErrTooLarge.WithMessage("object %q is %s; the limit is %d bytes (--objectsync-max-size)", truncate(id), sizeOf(err), o.cfg.MaxSize)
	case err != nil:
		return 0, ErrInvalidObject.WithMessage("object %q must be a JSON object", truncate(id))
	}
	r, err := o.raft()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		cmd := writeCmd{id: id, owner: owner, to: ver.String(), data: data, history: o.cfg.History, maxSize: o.cfg.MaxSize}
		if cur := o.lookup(id); cur != nil {
			if ver.String() == cur.ver.String() && string(data) == string(cur.data) {
				return cur.seq, nil // already so: a retried write
			}
			completes := cur.stalled && ver.String() == cur.ver.String()
			if !completes && !document.Newer(ver, cur.ver) {
				o.m.writes.WithLabelValues("error").Inc()
				return 0, ErrStaleVersion.WithMessage("version %s does not follow the current version %s of %q", ver, cur.ver, truncate(id))
			}
			if cur.stalled {
				// no data to diff against
			} else if patch, ok := document.Diff(cur.data, data); ok {
				cmd.patch, cmd.fromSeq, cmd.data = true, cur.seq, patch
			}
		}
		seq, err := o.submit(ctx, r, cmd)
		if errors.Is(err, ErrVersionMoved) && attempt < maxWriteAttempts {
			// This node's state lagged: catch up and diff again.
			if err := r.ReadIndex(ctx); err != nil {
				return 0, err
			}
			continue
		}
		return seq, err
	}
}

// patch applies an RFC 6902 patch from version from to version to, as
// master owner ("" for a REST write).
func (o *ObjectSync) patch(ctx context.Context, id, owner string, from, to document.Version, rawPatch []byte) (uint64, error) {
	p, err := document.Patch(rawPatch)
	if err != nil {
		return 0, ErrBadPatch.WithMessage("%s", err.Error())
	}
	r, err := o.raft()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	caughtUp := false
	for attempt := 1; ; attempt++ {
		cur := o.lookup(id)
		if cur == nil || cur.ver.String() != from.String() {
			if !caughtUp {
				// This node may lag: catch up before refusing.
				if err := r.ReadIndex(ctx); err != nil {
					return 0, err
				}
				caughtUp = true
				continue
			}
			o.m.writes.WithLabelValues("error").Inc()
			if cur == nil {
				return 0, ErrNotFound.WithMessage("no object %q to patch", truncate(id))
			}
			return 0, ErrVersionMoved.WithMessage("the patch is from version %s; the current version of %q is %s", from, truncate(id), cur.ver).WithDetail("current", cur.ver.String())
		}
		if !document.Newer(to, cur.ver) {
			o.m.writes.WithLabelValues("error").Inc()
			return 0, ErrStaleVersion.WithMessage("version %s does not follow the current version %s of %q", to, cur.ver, truncate(id))
		}
		if cur.stalled {
			o.m.writes.WithLabelValues("error").Inc()
			return 0, ErrPatchFailed.WithMessage("object %q is stalled: it has no data to patch", truncate(id))
		}
		// Apply it here first: a patch that does not apply is refused
		// without a round through the log.
		if _, err := document.ApplyCanonical(cur.data, p, o.cfg.MaxSize); err != nil {
			o.m.writes.WithLabelValues("error").Inc()
			if errors.Is(err, document.ErrTooLarge) {
				return 0, ErrTooLarge.WithMessage("patched, object %q would be over %d bytes (--objectsync-max-size)", truncate(id), o.cfg.MaxSize)
			}
			return 0, ErrPatchFailed.WithMessage("the patch does not apply to object %q: %s", truncate(id), err.Error())
		}
		cmd := writeCmd{id: id, owner: owner, patch: true, fromSeq: cur.seq, to: to.String(), data: p, history: o.cfg.History, maxSize: o.cfg.MaxSize}
		seq, err := o.submit(ctx, r, cmd)
		if errors.Is(err, ErrVersionMoved) && attempt < maxWriteAttempts {
			if err := r.ReadIndex(ctx); err != nil {
				return 0, err
			}
			continue
		}
		return seq, err
	}
}

func (o *ObjectSync) submit(ctx context.Context, r modules.Raft, cmd writeCmd) (uint64, error) {
	op, payload := o.capped(opWrite, encodeWrite(cmd))
	applied, err := r.Apply(ctx, op, payload)
	o.countCap(err)
	if err != nil {
		if !errors.Is(err, ErrVersionMoved) {
			o.m.writes.WithLabelValues("error").Inc()
		}
		return 0, err
	}
	if cmd.patch {
		o.m.writes.WithLabelValues("patch").Inc()
	} else {
		o.m.writes.WithLabelValues("full").Inc()
	}
	seq, err := decodeSeq(applied.Result)
	if err != nil {
		return applied.Index, nil
	}
	return seq, nil
}

func sizeOf(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[i+2:]
		if j := strings.Index(msg, ","); j >= 0 {
			return msg[:j]
		}
	}
	return "too large"
}

// readBarrier waits, for at most a few seconds, until this node has
// applied what was committed when it was called; without a leader it
// gives up and the caller serves what this node has.
func (o *ObjectSync) readBarrier(ctx context.Context) {
	r, err := o.raft()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = r.ReadIndex(ctx)
}

// stall records, for a producer, that version ver of id exists while its
// data is not ready.
func (o *ObjectSync) stall(ctx context.Context, id, owner string, ver document.Version) error {
	r, err := o.raft()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	op, payload := o.capped(opStall, encodeWrite(writeCmd{id: id, owner: owner, to: ver.String(), history: o.cfg.History, maxSize: o.cfg.MaxSize}))
	_, err = r.Apply(ctx, op, payload)
	o.countCap(err)
	return err
}

// remove deletes an object.
func (o *ObjectSync) remove(ctx context.Context, id string) error {
	r, err := o.raft()
	if err != nil {
		return err
	}
	_, err = r.Apply(ctx, opDelete, encodeID(id))
	return err
}

// claim makes owner the master of id.
func (o *ObjectSync) claim(ctx context.Context, id, owner string) error {
	r, err := o.raft()
	if err != nil {
		return err
	}
	_, err = r.Apply(ctx, opClaim, encodeClaim(claimCmd{id: id, owner: owner}))
	return err
}

// release gives up owner's claim of id.
func (o *ObjectSync) release(ctx context.Context, id, owner string) error {
	r, err := o.raft()
	if err != nil {
		return err
	}
	_, err = r.Apply(ctx, opRelease, encodeClaim(claimCmd{id: id, owner: owner}))
	return err
}

// bump increments a dependency counter and returns its new value.
func (o *ObjectSync) bump(ctx context.Context, name string) (uint64, error) {
	r, err := o.raft()
	if err != nil {
		return 0, err
	}
	op, payload := o.capped(opBump, encodeID(name))
	applied, err := r.Apply(ctx, op, payload)
	o.countCap(err)
	if err != nil {
		return 0, err
	}
	v, err := decodeSeq(applied.Result)
	if err != nil {
		return 0, fmt.Errorf("bump %s: %w", name, err)
	}
	return v, nil
}

// owner names a master connection of this run of this node.
func (o *ObjectSync) owner(conn uint64) string {
	return fmt.Sprintf("%s/%s/%d", o.host.NodeName(), o.incarnation, conn)
}

// ownerConn returns the producer key (node/connection) of an owner.
func ownerConn(owner string) string {
	i := strings.LastIndexByte(owner, '/')
	if i < 0 {
		return ""
	}
	return ownerNode(owner) + owner[i:]
}

// ownerNode returns the node name of an owner.
func ownerNode(owner string) string {
	i := strings.LastIndexByte(owner, '/')
	if i < 0 {
		return ""
	}
	j := strings.LastIndexByte(owner[:i], '/')
	if j < 0 {
		return ""
	}
	return owner[:j]
}

// LeadershipChanged runs, while this node leads, the loop that drops the
// master claims of nodes that left the cluster or died (their masters'
// connections are gone with them) and the production loop (leader.go).
func (o *ObjectSync) LeadershipChanged(isLeader bool) {
	o.init()
	o.life.Lock()
	defer o.life.Unlock()
	if o.leaderCancel != nil {
		o.leaderCancel()
		o.leaderCancel = nil
		o.lead.stop()
	}
	if !isLeader || o.stopped || o.host == nil {
		return
	}
	ctx, cancel := context.WithCancel(o.ctx)
	o.leaderCancel = cancel
	o.lead.start(time.Now(), o.cfg.ProduceTimeout)
	o.wg.Add(2)
	go func() {
		defer o.wg.Done()
		o.claimsLoop(ctx)
	}()
	go func() {
		defer o.wg.Done()
		o.productionLoop(ctx)
	}()
}

// claimsInterval is how often the leader looks for claims of dead nodes.
const claimsInterval = 2 * time.Second

func (o *ObjectSync) claimsLoop(ctx context.Context) {
	t := time.NewTicker(claimsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		alive := map[string]bool{}
		for _, s := range o.host.Cluster().Servers() {
			if s.Alive {
				alive[s.Name] = true
			}
		}
		alive[o.host.NodeName()] = true
		o.mu.RLock()
		dead := map[string]bool{}
		for _, owner := range o.st.claims {
			if n := ownerNode(owner); n != "" && !alive[n] {
				dead[n] = true
			}
		}
		o.mu.RUnlock()
		for n := range dead {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := o.host.Raft().ApplyOnLeader(actx, opReleaseNode, encodeReleaseNode(releaseNodeCmd{node: n}))
			cancel()
			if err != nil && !errors.Is(err, context.Canceled) {
				o.logger.Debug("drop claims of a dead node", "node", n, "err", err)
			}
		}
	}
}

// clientError converts any error into the code and message of an error
// frame.
func clientError(err error) (code, message string) {
	e := httpjson.As(err)
	return e.Code, e.Message
}
