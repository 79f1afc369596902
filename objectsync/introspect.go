package objectsync

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"shoal/objectsync/internal/document"
)

// Introspection objects, as Seapig's viewer used: read-only objects that
// describe this node, subscribed to (and read through REST) like any
// other. They are local to the node that serves them, not replicated:
// each node describes itself (the leader adds what it knows of the
// cluster's producers). They are rebuilt every introspectInterval and
// published as patches when they change.
const (
	idObjects     = reservedPrefix + "objects"
	idProducers   = reservedPrefix + "producers"
	idConnections = reservedPrefix + "connections"
	idStats       = reservedPrefix + "stats"

	introspectInterval = time.Second
	// maxListedObjects bounds shoal:objects.
	maxListedObjects = 10000
)

// virtuals holds the introspection objects.
type virtuals struct {
	mu   sync.RWMutex
	objs map[string]*object
	seq  uint64 // identifies their states, as the Raft index does for others
	ver  map[string]float64
}

func (v *virtuals) get(id string) *object {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.objs[id]
}

// matching lists the introspection objects that pattern matches, if the
// pattern names them explicitly ("shoal:*", not "*": a catch-all
// subscriber does not want them every second).
func (v *virtuals) matching(pattern string) []*object {
	if !strings.HasPrefix(pattern, reservedPrefix) {
		return nil
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []*object
	for id, o := range v.objs {
		if covers(pattern, id) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// set installs a new state of a virtual object if its data changed, and
// returns the change to publish (nil if none).
func (v *virtuals) set(id string, data []byte, history int, now time.Time) *change {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.objs == nil {
		v.objs, v.ver = map[string]*object{}, map[string]float64{}
	}
	cur := v.objs[id]
	if cur != nil && string(cur.data) == string(data) {
		return nil
	}
	v.seq++
	v.ver[id]++
	next := &object{id: id, seq: v.seq, ver: document.NumberVersion(v.ver[id]), data: data, updated: now.UnixNano()}
	var entry *patchEntry
	if cur != nil {
		if patch, ok := document.Diff(cur.data, data); ok {
			entry = &patchEntry{fromSeq: cur.seq, toSeq: next.seq, from: cur.ver.String(), to: next.ver.String(), patch: patch}
			next.history = appendHistory(cur.history, entry, history)
		}
	}
	v.objs[id] = next
	return &change{id: id, obj: next, entry: entry}
}

// introspectLoop rebuilds the introspection objects until Stop.
func (o *ObjectSync) introspectLoop() {
	t := time.NewTicker(introspectInterval)
	defer t.Stop()
	for {
		o.introspect(time.Now())
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *ObjectSync) introspect(now time.Time) {
	docs := map[string]any{
		idObjects:     o.objectsDoc(),
		idProducers:   o.producersDoc(),
		idConnections: o.connectionsDoc(),
		idStats:       map[string]any{"node": o.nodeName(), "status": o.Status()},
	}
	for _, id := range []string{idObjects, idProducers, idConnections, idStats} {
		raw, err := json.Marshal(docs[id])
		if err != nil {
			continue
		}
		data, err := document.Object(raw, 0)
		if err != nil {
			continue
		}
		if ch := o.virt.set(id, data, o.cfg.History, now); ch != nil {
			o.fo.publish(ch)
		}
	}
}

func (o *ObjectSync) nodeName() string {
	if o.host == nil {
		return ""
	}
	return o.host.NodeName()
}

func (o *ObjectSync) objectsDoc() map[string]any {
	o.mu.RLock()
	ids := make([]string, 0, len(o.st.objects))
	for id := range o.st.objects {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	truncated := len(ids) > maxListedObjects
	if truncated {
		ids = ids[:maxListedObjects]
	}
	list := make(map[string]json.RawMessage, len(ids))
	for _, id := range ids {
		list[id] = json.RawMessage(o.st.objects[id].ver.String())
	}
	masters := len(o.st.claims)
	o.mu.RUnlock()
	return map[string]any{"node": o.nodeName(), "objects": list, "truncated": truncated, "masters": masters}
}

func (o *ObjectSync) producersDoc() map[string]any {
	local := o.snapshotReport().Producers
	if local == nil {
		local = []producerEntry{}
	}
	doc := map[string]any{"node": o.nodeName(), "local": local}
	o.lead.mu.Lock()
	if o.lead.active {
		type entry struct {
			Node     string   `json:"node"`
			Conn     uint64   `json:"conn"`
			Patterns []string `json:"patterns"`
		}
		cluster := []entry{}
		for node, r := range o.lead.reports {
			for _, p := range r.producers {
				cluster = append(cluster, entry{Node: node, Conn: p.Conn, Patterns: p.Patterns})
			}
		}
		sort.Slice(cluster, func(i, j int) bool {
			return producerKey(cluster[i].Node, cluster[i].Conn) < producerKey(cluster[j].Node, cluster[j].Conn)
		})
		pending := []string{}
		for id := range o.lead.pending {
			pending = append(pending, id)
		}
		sort.Strings(pending)
		doc["cluster"], doc["pending"] = cluster, pending
	}
	o.lead.mu.Unlock()
	return doc
}

func (o *ObjectSync) connectionsDoc() map[string]any {
	doc := map[string]any{"node": o.nodeName(), "watches": o.watches.Load()}
	if o.hub != nil {
		doc["websockets"] = o.hub.Len()
	}
	o.fo.mu.Lock()
	doc["subscribers"], doc["lagging"] = len(o.fo.sessions), o.fo.lagging
	doc["subscribed_ids"], doc["subscribed_patterns"] = len(o.fo.exact), len(o.fo.patterns)
	o.fo.mu.Unlock()
	return doc
}
