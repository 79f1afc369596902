package logstream

import (
	"cmp"
	"slices"
	"time"

	"shoal/modules"
)

// Limits shared by the HTTP layer, the command decoder and the snapshot
// decoder.
const (
	maxNameLen = modules.MaxNameLen // names are checked by modules.ValidName
	maxIDLen   = 256
	maxBatch   = 1000
)

// entry is one retained log entry. Its index is implied by its position
// (logState.first + i). Entries are never modified once appended, so a
// slice of them may be shared with snapshots and readers.
type entry struct {
	id   string
	data []byte // compact, valid JSON
	time int64  // command time, Unix nanoseconds
}

// logState is one named log.
type logState struct {
	name  string
	first uint64 // index of entries[0]; a log always holds at least one entry
	// entries only grows at the end and is resliced at the front, so a
	// captured prefix (entries[:n:n]) stays valid while appends continue.
	entries []entry
	// notify is closed and replaced whenever entries are appended, and
	// closed when the state is replaced by Restore.
	notify chan struct{}
}

// next is the index the next appended entry gets.
func (ls *logState) next() uint64 { return ls.first + uint64(len(ls.entries)) }

// last is the index of the newest entry.
func (ls *logState) last() uint64 { return ls.next() - 1 }

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

// state is the module's replicated state. It is mutated only from the FSM
// goroutine, under Log.mu held for writing; readers hold Log.mu for
// reading and may keep slices they took after unlocking.
type state struct {
	logs map[string]*logState
	// dedup maps each remembered id to its newest record in dedupQ.
	dedup map[dedupKey]dedupRec
	// dedupQ holds the records in apply order, oldest first. Like
	// logState.entries it only grows at the end and is resliced at the
	// front, so snapshots share it; dedup is rebuilt from it on Restore.
	dedupQ []dedupRec
	// entries is the number of retained entries across all logs.
	entries int
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
// submitting node's configuration, stamped into the command.
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

// apply applies c at command time now. It cannot fail: c was validated by
// the decoder, and a batch is applied whole. It returns the number of
// entries appended and trimmed.
func (st *state) apply(c appendCmd, now int64) (res appendResult, appended, trimmed int) {
	window := int64(c.dedupWindow)
	st.expire(now, window)
	res.indexes = make([]uint64, len(c.entries))
	res.duplicates = make([]bool, len(c.entries))
	ls := st.logs[c.log]
	for i, e := range c.entries {
		dedup := e.id != "" && window > 0
		key := dedupKey{log: c.log, id: e.id}
		if dedup {
			if rec, ok := st.dedup[key]; ok && now-rec.time < window {
				res.indexes[i], res.duplicates[i] = rec.index, true
				continue
			}
		}
		if ls == nil {
			// A log is created by its first appended entry (a new log has
			// no remembered ids, so the first entry is always appended).
			ls = &logState{name: c.log, first: 1, notify: make(chan struct{})}
			st.logs[c.log] = ls
			close(st.created)
			st.created = make(chan struct{})
		}
		index := ls.next()
		ls.entries = append(ls.entries, entry{id: e.id, data: e.data, time: now})
		res.indexes[i] = index
		appended++
		if dedup {
			key.log = ls.name // share the name's bytes instead of the command's
			rec := dedupRec{key: key, index: index, time: now}
			st.dedup[key] = rec
			st.dedupQ = append(st.dedupQ, rec)
		}
	}
	if appended == 0 {
		return res, 0, 0
	}
	if over := uint64(len(ls.entries)); over > c.maxEntries {
		n := int(over - c.maxEntries)
		ls.entries = ls.entries[n:]
		ls.first += uint64(n)
		trimmed = n
	}
	st.entries += appended - trimmed
	close(ls.notify)
	ls.notify = make(chan struct{})
	return res, appended, trimmed
}

// expire forgets the oldest remembered ids whose window has passed at now.
// Command times of successive commands are usually but not always
// increasing (a new leader's clock may lag), so expire stops at the first
// record still inside the window; lookups check the window themselves.
func (st *state) expire(now, window int64) {
	n := 0
	for n < len(st.dedupQ) && now-st.dedupQ[n].time >= window {
		rec := st.dedupQ[n]
		if cur, ok := st.dedup[rec.key]; ok && cur.index == rec.index {
			delete(st.dedup, rec.key)
		}
		n++
	}
	if n == len(st.dedupQ) {
		st.dedupQ = nil
	} else {
		st.dedupQ = st.dedupQ[n:]
	}
}

// logInfo summarises one log.
type logInfo struct {
	Name       string `json:"name"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"`
	Entries    int    `json:"entries"`
}

// list returns every log, sorted by name.
func (st *state) list() []logInfo {
	infos := make([]logInfo, 0, len(st.logs))
	for _, ls := range st.logs {
		infos = append(infos, logInfo{Name: ls.name, FirstIndex: ls.first, LastIndex: ls.last(), Entries: len(ls.entries)})
	}
	slices.SortFunc(infos, func(a, b logInfo) int { return cmp.Compare(a.Name, b.Name) })
	return infos
}

// page is a run of consecutive entries starting at index from.
type page struct {
	from    uint64
	entries []entry
}

// read returns up to limit entries of ls from index from on. from must not
// be below ls.first. The returned slice is shared and must not be modified.
func (ls *logState) read(from uint64, limit int) page {
	if from >= ls.next() {
		return page{from: from}
	}
	start := from - ls.first
	end := start + uint64(limit)
	if n := uint64(len(ls.entries)); end > n {
		end = n
	}
	return page{from: from, entries: ls.entries[start:end:end]}
}
