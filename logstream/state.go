package logstream

import (
	"cmp"
	"slices"
	"time"

	"shoal/logstream/segment"
	"shoal/modules"
)

// Limits shared by the HTTP layer, the command decoder and the snapshot
// decoder.
const (
	maxNameLen = modules.MaxNameLen // names are checked by modules.ValidName
	maxIDLen   = 256
	maxBatch   = 1000
)

// logState is one named log. Its entries live in its store, on disk; the
// state keeps only counters.
//
// first and next are the state machine's own view, advanced by every
// applied command. They equal the store's except while Raft replays
// commands the store already holds (after a restart): then the store is
// ahead, and the replay brings first and next up to it without writing.
type logState struct {
	name string
	// created is the Raft index of the command that created the log: a log
	// deleted and created again is another log, in another directory.
	created uint64
	// first is the first retained index, next the index the next appended
	// entry gets; the log is empty when they are equal.
	first, next uint64
	lim         limits
	// store holds the entries. It is nil for a log whose directory this
	// node deleted after the snapshot it restarted from: a command later
	// in the replay deletes the log from the state too.
	store *segment.Store
	// notify is closed and replaced whenever entries are appended or
	// trimmed, and closed when the log is deleted or the state replaced.
	notify chan struct{}
}

// entries is the number of retained entries.
func (ls *logState) entries() uint64 { return ls.next - ls.first }

// last is the index of the newest entry (first-1 when the log is empty).
func (ls *logState) last() uint64 { return ls.next - 1 }

// dedupKey names one publish id of one log.
type dedupKey struct {
	log, id string
}

// dedupRec is one remembered publish id, in the dedup queue.
type dedupRec struct {
	key   dedupKey
	index uint64
	time  int64 // command time of the original append, Unix nanoseconds
}

// state is the module's replicated state. It is changed only from the FSM
// goroutine; the map and the logs' counters under Log.mu held for
// writing, so that readers (who hold it for reading) see them whole. The
// dedup table is the FSM goroutine's alone.
type state struct {
	logs map[string]*logState
	// dedup maps each remembered id to its newest record in dedupQ.
	dedup map[dedupKey]dedupRec
	// dedupQ holds the records in apply order, oldest first. It only grows
	// at the end and is resliced at the front, so snapshots share it;
	// dedup is rebuilt from it on Restore.
	dedupQ []dedupRec
	// entries is the number of retained entries across all logs.
	entries uint64
	// created is closed and replaced whenever a log is created, and closed
	// when the state is replaced, to wake streams waiting for a log.
	created chan struct{}
}

func newState() *state {
	return &state{
		logs:    map[string]*logState{},
		dedup:   map[dedupKey]dedupRec{},
		created: make(chan struct{}),
	}
}

// wakeAll closes every channel a stream may wait on; used when the state is
// replaced, so streams look again.
func (st *state) wakeAll() {
	for _, ls := range st.logs {
		close(ls.notify)
	}
	close(st.created)
}

// newEntry is an entry to append, as carried by a command.
type newEntry struct {
	id   string
	data []byte
}

// appendCmd appends entries to one log. MaxEntries and DedupWindow are the
// submitting node's configuration, stamped into the command; a log's own
// max_entries, if set, takes precedence.
type appendCmd struct {
	log         string
	maxEntries  uint64
	dedupWindow time.Duration
	entries     []newEntry
}

// appendResult is the outcome of an appendCmd, one slot per entry.
type appendResult struct {
	indexes    []uint64
	duplicates []bool
}

// dedupe decides, at command time now, which entries of c are new and
// which repeat a remembered id, and remembers the new ones' ids with the
// indexes they get from next on. It returns the result and the new
// entries. Only the FSM goroutine calls it.
func (st *state) dedupe(c appendCmd, next uint64, now int64) (appendResult, []segment.Entry) {
	window := int64(c.dedupWindow)
	st.expire(now, window)
	res := appendResult{indexes: make([]uint64, len(c.entries)), duplicates: make([]bool, len(c.entries))}
	batch := make([]segment.Entry, 0, len(c.entries))
	for i, e := range c.entries {
		dedup := e.id != "" && window > 0
		key := dedupKey{log: c.log, id: e.id}
		if dedup {
			if rec, ok := st.dedup[key]; ok && now-rec.time < window {
				res.indexes[i], res.duplicates[i] = rec.index, true
				continue
			}
		}
		index := next + uint64(len(batch))
		batch = append(batch, segment.Entry{ID: e.id, Data: e.data, Time: now})
		res.indexes[i] = index
		if dedup {
			rec := dedupRec{key: key, index: index, time: now}
			st.dedup[key] = rec
			st.dedupQ = append(st.dedupQ, rec)
		}
	}
	if over := len(st.dedupQ) - maxDedupIDs; over > 0 {
		st.dropOldest(over)
	}
	return res, batch
}

// maxDedupIDs bounds the remembered publish ids of a node, whatever the
// window and the publish rate: the oldest are forgotten first. It is not a
// flag, because every node must forget the same ids at the same command
// (about 100 bytes each: 262,144 ids take about 26 MB).
//
// A variable only so that a test can lower it.
var maxDedupIDs = 1 << 18

// dropOldest forgets the n oldest remembered ids.
func (st *state) dropOldest(n int) {
	for _, rec := range st.dedupQ[:n] {
		if cur, ok := st.dedup[rec.key]; ok && cur.index == rec.index {
			delete(st.dedup, rec.key)
		}
	}
	st.dedupQ = st.dedupQ[n:]
}

// forget drops every remembered id of a deleted log.
func (st *state) forget(log string) {
	for key := range st.dedup {
		if key.log == log {
			delete(st.dedup, key)
		}
	}
	st.dedupQ = slices.DeleteFunc(slices.Clone(st.dedupQ), func(rec dedupRec) bool { return rec.key.log == log })
}

// expire forgets the oldest remembered ids whose window has passed at now.
// Command times of successive commands are usually but not always
// increasing (a new leader's clock may lag), so expire stops at the first
// record still inside the window; lookups check the window themselves.
func (st *state) expire(now, window int64) {
	n := 0
	for n < len(st.dedupQ) && now-st.dedupQ[n].time >= window {
		n++
	}
	st.dropOldest(n)
	if len(st.dedupQ) == 0 {
		st.dedupQ = nil // let the backing array go
	}
}

// logInfo summarises one log. The limits are the log's own (absent: the
// cluster's defaults apply; 0: no limit).
type logInfo struct {
	Name       string  `json:"name"`
	FirstIndex uint64  `json:"first_index"`
	LastIndex  uint64  `json:"last_index"`
	Entries    uint64  `json:"entries"`
	Bytes      int64   `json:"bytes"`
	Segments   int     `json:"segments"`
	MaxEntries *uint64 `json:"max_entries,omitempty"`
	MaxBytes   *uint64 `json:"max_bytes,omitempty"`
	MaxAge     *string `json:"max_age,omitempty"`
}

// info summarises ls. The caller holds Log.mu for reading.
func (ls *logState) info() logInfo {
	in := logInfo{Name: ls.name, FirstIndex: ls.first, LastIndex: ls.last(), Entries: ls.entries()}
	if ls.store != nil {
		s := ls.store.Stats()
		in.Bytes, in.Segments = s.DiskBytes, s.Segments
	}
	if ls.lim.set&limitEntries != 0 {
		in.MaxEntries = &ls.lim.maxEntries
	}
	if ls.lim.set&limitBytes != 0 {
		in.MaxBytes = &ls.lim.maxBytes
	}
	if ls.lim.set&limitAge != 0 {
		age := time.Duration(ls.lim.maxAge).String()
		in.MaxAge = &age
	}
	return in
}

// list returns every log, sorted by name.
func (st *state) list() []logInfo {
	infos := make([]logInfo, 0, len(st.logs))
	for _, ls := range st.logs {
		infos = append(infos, ls.info())
	}
	slices.SortFunc(infos, func(a, b logInfo) int { return cmp.Compare(a.Name, b.Name) })
	return infos
}
