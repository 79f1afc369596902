package locks

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestCommand_FormatIsPinned decodes bytes written by the encoders before
// they moved onto internal/wire, and checks the encoders still write them:
// commands stay in the Raft log and snapshots on disk, and every node must
// apply them alike.
func TestCommand_FormatIsPinned(t *testing.T) {
	create := createCmd{name: "jobs", limit: 300, update: true}
	del := deleteCmd{name: "jobs"}
	acquire := acquireCmd{kind: kindSemaphore, name: "jobs", holder: "worker-é", mode: modeSlot, ttl: 15 * time.Second, wait: time.Minute, createLimit: 3, nonce: 1 << 40}
	acquireLock := acquireCmd{kind: kindLock, name: "cfg", holder: "h", mode: modeWrite, ttl: time.Second, nonce: 7}
	release := releaseCmd{kind: kindLock, name: "cfg", holder: "r1"}
	renew := renewCmd{kind: kindLock, name: "cfg", holder: "r1", ttl: time.Hour}
	cancel := cancelCmd{kind: kindSemaphore, name: "jobs", holder: "d", nonce: 4}
	expire := expireCmd{items: []expireItem{
		{kind: kindSemaphore, name: "jobs", holder: "b", id: 3, deadline: unixNano(testEpoch)},
		{kind: kindLock, name: "cfg", waiter: true, holder: "c", id: 9, deadline: -1},
	}}
	granted := acquireResult{granted: true, token: 1 << 40, expires: unixNano(testEpoch)}
	queued := acquireResult{queued: true}
	deleted := deleteResult{released: 3, failed: 200}
	pin(t, "create", create, encodeCreate, decodeCreate, "046a6f6273ac0201")
	pin(t, "delete", del, encodeDelete, decodeDelete, "046a6f6273")
	pin(t, "acquire", acquire, encodeAcquire, decodeAcquire, "01046a6f627309776f726b65722dc3a90080acc7f03780b09dc2df0103808080808020")
	pin(t, "acquire lock", acquireLock, encodeAcquire, decodeAcquire, "02036366670168028094ebdc03000007")
	pin(t, "release", release, encodeRelease, decodeRelease, "0203636667027231")
	pin(t, "renew", renew, encodeRenew, decodeRenew, "020363666702723180c0e285e368")
	pin(t, "cancel", cancel, encodeCancel, decodeCancel, "01046a6f6273016404")
	pin(t, "expire", expire, encodeExpire, decodeExpire, "0201046a6f62730001620380c899efddc7e0963002036366670101630901")
	pin(t, "granted result", granted, encodeAcquireResult, decodeAcquireResult, "0180808080802080c899efddc7e09630")
	pin(t, "queued result", queued, encodeAcquireResult, decodeAcquireResult, "02")
	pin(t, "delete result", deleted, encodeDeleteResult, decodeDeleteResult, "03c801")
	expireResult := func(n uint64) []byte { return encodeExpireResult(int(n)) }
	pin(t, "expire result", uint64(300), expireResult, decodeExpireResult, "ac02")

	// The snapshot of the scenario's state.
	snap, _ := hex.DecodeString("534c434b01090301046a6f627302020162000380b09dc2df0180e089eeeecbe09630020163000680b09dc2df0180e089eeeecbe09630030001046d61646501010178000880b09dc2df0180e089eeeecbe09630050002036366670001027231010980c0e285e36880a8eaaefd99e2963006020277310280b09dc2df0180b09dc2df0180e089eeeecbe09630070272320180b09dc2df0180b09dc2df0180e089eeeecbe0963008")
	if got := persist(t, scenarioLocks(t)); !bytes.Equal(got, snap) {
		t.Errorf("snapshot: persists as %x, want %x", got, snap)
	}
	l := new(Locks)
	if err := l.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("restore the pinned snapshot: %v", err)
	}
	if got := persist(t, l); !bytes.Equal(got, snap) {
		t.Errorf("restored snapshot: persists as %x, want %x", got, snap)
	}

	// A padded (non-minimal) varint decoded before the move and no longer
	// does: no encoder ever wrote one, so no log or snapshot holds one.
	padded := []byte{0x04, 'j', 'o', 'b', 's', 0xac, 0x82, 0x00, 0x01} // create, limit 300 in three bytes
	if _, err := decodeCreate(padded); !errors.Is(err, ErrMalformedCommand) {
		t.Errorf("a padded limit: got %v, want ErrMalformedCommand", err)
	}
	paddedSnap := append([]byte("SLCK\x01\x89\x00"), snap[6:]...) // last token 9 in two bytes
	if err := new(Locks).Restore(bytes.NewReader(paddedSnap)); !errors.Is(err, ErrMalformedSnapshot) {
		t.Errorf("a padded last token: got %v, want ErrMalformedSnapshot", err)
	}
}

// pin checks that encode writes v as the bytes in hexBytes, written by the
// encoder before the move, and that decode reads them back as v.
func pin[T any](t *testing.T, name string, v T, encode func(T) []byte, decode func([]byte) (T, error), hexBytes string) {
	t.Helper()
	want, err := hex.DecodeString(hexBytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := encode(v); !bytes.Equal(got, want) {
		t.Errorf("%s: encodes as %x, want %x", name, got, want)
	}
	if got, err := decode(want); err != nil || !reflect.DeepEqual(got, v) {
		t.Errorf("%s: decodes as %+v, %v; want %+v", name, got, err, v)
	}
}
