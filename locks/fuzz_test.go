package locks

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain
// go test. Regenerate them with: go test -run TestFuzzSeeds -update-fuzz-seeds
var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora in testdata/fuzz")

// scenarioLocks returns a Locks holding the state scenario builds.
func scenarioLocks(tb testing.TB) *Locks {
	l := new(Locks)
	for i, c := range scenario() {
		l.ApplyCommand(modules.Command{Index: uint64(i + 1), Time: testEpoch.Add(time.Duration(i) * time.Second), Op: c.op, Payload: c.payload})
	}
	return l
}

func FuzzApplyCommand(f *testing.F) {
	for _, c := range commandSeeds() {
		f.Add(c.op, c.payload)
	}
	base := persist(&testing.T{}, scenarioLocks(f))
	f.Fuzz(func(t *testing.T, op byte, payload []byte) {
		l := new(Locks)
		if err := l.Restore(bytes.NewReader(base)); err != nil {
			t.Fatal(err)
		}
		cmd := modules.Command{Index: 100, Time: testEpoch.Add(time.Hour), Op: op, Payload: payload}
		_, err := l.ApplyCommand(cmd)
		if err != nil {
			var e *httpjson.Error
			switch {
			case errors.Is(err, ErrMalformedCommand), errors.Is(err, ErrUnknownOp):
			case errors.As(err, &e) && e.Status >= 400 && e.Status < 500:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if got := persist(t, l); !bytes.Equal(got, base) {
				t.Fatalf("a refused command (%v) changed the state", err)
			}
			return
		}
		checkInvariants(t, l.st)
		checkSnapshotRoundTrip(t, l)
	})
}

func FuzzRestore(f *testing.F) {
	for _, seed := range snapshotSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := new(Locks)
		if err := l.Restore(bytes.NewReader(data)); err != nil {
			if !errors.Is(err, ErrMalformedSnapshot) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkSnapshotRoundTrip(t, l)
		// A restored state takes new commands.
		for i, c := range scenario() {
			l.ApplyCommand(modules.Command{Index: l.st.lastToken + uint64(i) + 1, Time: testEpoch, Op: c.op, Payload: c.payload})
		}
		checkSnapshotRoundTrip(t, l)
	})
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s.which, s.body)
	}
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		check := func(err error) bool {
			t.Helper()
			if err == nil {
				return true
			}
			var e *httpjson.Error
			if !errors.As(err, &e) || e.Status != 400 {
				t.Fatalf("error %v is not a 400 *httpjson.Error", err)
			}
			return false
		}
		switch which % 4 {
		case 0, 1:
			k := kindSemaphore
			if which%4 == 1 {
				k = kindLock
			}
			p, err := decodeAcquireBody(k, bytes.NewReader(body), cfg)
			if !check(err) {
				return
			}
			// Whatever the API accepts, the state machine accepts unchanged.
			c := acquireCmd{kind: k, name: "n", holder: p.holder, mode: p.mode, ttl: p.ttl, wait: p.wait, createLimit: p.createLimit, nonce: 1}
			got, err := decodeAcquire(encodeAcquire(c))
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Fatalf("command of an accepted body: got %+v, %v; want %+v", got, err, c)
			}
			if p.retries < 0 || p.retries > maxRetries || p.minWait < 0 || p.maxWait < p.minWait || p.maxWait > cfg.MaxWait {
				t.Fatalf("accepted retry settings %+v", p)
			}
		case 2:
			limit, err := decodeCreateBody(bytes.NewReader(body))
			if check(err) {
				if _, err := decodeCreate(encodeCreate(createCmd{name: "n", limit: limit})); err != nil {
					t.Fatalf("create of an accepted body: %v", err)
				}
			}
		case 3:
			holder, ttl, err := decodeHolderBody(bytes.NewReader(body), true, cfg)
			if check(err) {
				if _, err := decodeRenew(encodeRenew(renewCmd{kind: kindLock, name: "n", holder: holder, ttl: ttl})); err != nil {
					t.Fatalf("renew of an accepted body: %v", err)
				}
			}
		}
	})
}

func FuzzDecodeResult(f *testing.F) {
	for _, s := range resultSeeds() {
		f.Add(s.which, s.body)
	}
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		var err error
		switch which % 3 {
		case 0:
			var r acquireResult
			if r, err = decodeAcquireResult(b); err == nil {
				if again, err := decodeAcquireResult(encodeAcquireResult(r)); err != nil || again != r {
					t.Fatalf("acquire result %+v round trips to %+v, %v", r, again, err)
				}
			}
		case 1:
			var r deleteResult
			if r, err = decodeDeleteResult(b); err == nil && (r.released < 0 || r.failed < 0) {
				t.Fatalf("delete result %+v", r)
			}
		case 2:
			var v byte
			if v, err = decodeByteResult(b, byte(cancelReleased), "cancel result"); err == nil && v > byte(cancelReleased) {
				t.Fatalf("cancel result %d", v)
			}
		}
		if err != nil && !errors.Is(err, ErrMalformedCommand) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func resultSeeds() []requestSeed {
	return []requestSeed{
		{0, encodeAcquireResult(acquireResult{granted: true, token: 42, expires: unixNano(testEpoch)})},
		{0, encodeAcquireResult(acquireResult{queued: true})},
		{0, []byte{1, 0, 0}},
		{0, []byte{7}},
		{1, encodeDeleteResult(deleteResult{released: 3, failed: 1})},
		{1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}},
		{2, []byte{2}},
		{2, []byte{3}},
		{2, nil},
	}
}

// checkSnapshotRoundTrip checks that l's state persists, restores into a
// new instance and persists to the same bytes again.
func checkSnapshotRoundTrip(t *testing.T, l *Locks) {
	t.Helper()
	first := persist(t, l)
	other := new(Locks)
	if err := other.Restore(bytes.NewReader(first)); err != nil {
		t.Fatalf("restore of a persisted state: %v", err)
	}
	if again := persist(t, other); !bytes.Equal(first, again) {
		t.Fatalf("snapshot round trip differs")
	}
}

// checkInvariants checks what every state built by commands satisfies.
func checkInvariants(t *testing.T, st *state) {
	t.Helper()
	holders, waiters := 0, 0
	for _, tbl := range []map[string]*sem{st.sems, st.locks} {
		for name, s := range tbl {
			writers := 0
			for id, h := range s.holders {
				if h.id != id || h.token == 0 || h.token > st.lastToken || !validMode(s.kind, h.mode) {
					t.Fatalf("%s %q: bad holder %+v", s.kind, name, h)
				}
				if h.mode == modeWrite {
					writers++
				}
			}
			if writers != s.writers || (writers > 0 && len(s.holders) > 1) {
				t.Fatalf("lock %q: %d writers among %d holders", name, writers, len(s.holders))
			}
			if len(s.queue) > 0 && s.canGrant(s.queue[0].mode) {
				t.Fatalf("%s %q: the head of the queue could be granted", s.kind, name)
			}
			if s.kind == kindLock && len(s.holders) == 0 && len(s.queue) == 0 {
				t.Fatalf("idle lock %q stored", name)
			}
			holders += len(s.holders)
			waiters += len(s.queue)
		}
	}
	if holders != st.holders || waiters != st.waiters {
		t.Fatalf("counts %d/%d, want %d/%d", st.holders, st.waiters, holders, waiters)
	}
}

func commandSeeds() []command {
	seeds := scenario()
	acquire := encodeAcquire(acquireCmd{kind: kindSemaphore, name: "jobs", holder: "z", ttl: time.Second, wait: time.Second, nonce: 9})
	seeds = append(seeds,
		command{opAcquire, acquire[:len(acquire)-1]},
		command{opAcquire, append(append([]byte(nil), acquire...), 0)},
		command{opCapped, encodeCapped(caps{semaphores: 1, locks: 1}, opAcquire, acquire)},
		command{opCapped, encodeCapped(caps{semaphores: 1}, opCreate, encodeCreate(createCmd{name: "new", limit: 2}))},
		command{opCapped, encodeCapped(caps{locks: 1}, opRelease, encodeRelease(releaseCmd{kind: kindLock, name: "cfg", holder: "r1"}))},
		command{opCapped, encodeCapped(caps{}, opCapped, acquire)},
		command{opCapped, []byte{0x80}},
		command{opExpire, encodeExpire(expireCmd{items: []expireItem{
			{kind: kindSemaphore, name: "jobs", holder: "b", id: 3, deadline: unixNano(testEpoch.Add(time.Minute + 2*time.Second))},
			{kind: kindSemaphore, name: "jobs", waiter: true, holder: "c", id: 3, deadline: 0},
		}})},
		command{opCancel, encodeCancel(cancelCmd{kind: kindLock, name: "cfg", holder: "w1", nonce: 7})},
		command{opRelease, encodeRelease(releaseCmd{kind: kindLock, name: "cfg", holder: "r1"})},
		command{opCreate, encodeCreate(createCmd{name: "jobs", limit: 1, update: true})},
		command{opCreate, encodeCreate(createCmd{name: "jobs", limit: 0})},
		command{opRearm, []byte{0}},
		command{0, nil},
		command{99, []byte("x")},
	)
	return seeds
}

func snapshotSeeds(tb testing.TB) [][]byte {
	full := persist(&testing.T{}, scenarioLocks(tb))
	return [][]byte{
		nil,
		full,
		full[:len(full)/2],
		[]byte("SLCK\x01\x00\x00"),
		[]byte("SLCK\x01\x05\x01\x02\x01l\x00\x00\x00"),          // an idle lock
		[]byte("SLCK\x01\x05\x01\x01\x01s\x00\x00\x00"),          // a semaphore with limit 0
		[]byte("SLCK\x01\x01\x01\x01\x01s\x01\x01\x01h\x00\x07"), // a token above the last one
		[]byte("SLCK\x02\x00\x00"),
		[]byte("NOTASNAPSHOT"),
	}
}

type requestSeed struct {
	which byte
	body  []byte
}

func requestSeeds() []requestSeed {
	s := func(which byte, body string) requestSeed { return requestSeed{which, []byte(body)} }
	return []requestSeed{
		s(0, `{"holder":"h1","ttl":"15s","wait":"5s"}`),
		s(0, `{"holder":"h1","ttl":"15s","create_limit":3,"retries":2,"min_wait":"10ms","max_wait":"1s"}`),
		s(0, `{"holder":"h1","ttl":"-1s"}`),
		s(0, `{"holder":"h1","ttl":15}`),
		s(0, `{"holder":"`+strings.Repeat("x", 300)+`","ttl":"1s"}`),
		s(0, `{"holder":"h1","ttl":"1s","mode":"read"}`),
		s(1, `{"holder":"h1","mode":"read","ttl":"15s","wait":"1m"}`),
		s(1, `{"holder":"h1","mode":"upgrade","ttl":"15s"}`),
		s(1, `{"holder":"h1","ttl":"1s","create_limit":1}`),
		s(2, `{"limit":3}`),
		s(2, `{"limit":0}`),
		s(2, `{"limit":1e3}`),
		s(3, `{"holder":"h1","ttl":"15s"}`),
		s(3, `{"holder":"h1"}`),
		s(3, ``),
		s(3, `{"holder":"h1","ttl":"15s"} {}`),
	}
}

// TestFuzzSeeds writes the seed corpora when run with -update-fuzz-seeds.
func TestFuzzSeeds(t *testing.T) {
	if !*updateFuzzSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz")
	}
	write := func(fuzz string, i int, values ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range commandSeeds() {
		write("FuzzApplyCommand", i, fmt.Sprintf("byte(%q)", rune(c.op)), fmt.Sprintf("[]byte(%q)", c.payload))
	}
	for i, seed := range snapshotSeeds(t) {
		write("FuzzRestore", i, fmt.Sprintf("[]byte(%q)", seed))
	}
	for i, seed := range requestSeeds() {
		write("FuzzDecodeRequest", i, fmt.Sprintf("byte(%q)", rune(seed.which)), fmt.Sprintf("[]byte(%q)", seed.body))
	}
	for i, seed := range resultSeeds() {
		write("FuzzDecodeResult", i, fmt.Sprintf("byte(%q)", rune(seed.which)), fmt.Sprintf("[]byte(%q)", seed.body))
	}
}
