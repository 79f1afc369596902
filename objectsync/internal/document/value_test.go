package document

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// applyBoth applies patch with Apply and with ApplyValue and fails the
// test unless they agree: both refuse, or both give the same canonical
// object.
func applyBoth(t *testing.T, doc, patch []byte) {
	t.Helper()
	want, errWant := Apply(doc, patch, 0)
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	out, errGot := ApplyValue(v, patch)
	if errors.Is(errGot, ErrNotSimple) {
		return // the caller uses Apply
	}
	var got []byte
	if errGot == nil {
		var err error
		if got, err = Encode(out); err != nil {
			t.Fatal(err)
		}
	}
	if (errWant == nil) != (errGot == nil) || !bytes.Equal(got, want) {
		t.Fatalf("%s on %s: Apply = %s, %v; ApplyValue = %s, %v", patch, doc, want, errWant, got, errGot)
	}
}

// agreementDoc and agreementPatches are the cases on which each fast way of
// applying a patch must agree with Apply: every operation, and the
// failures RFC 6902 names.
const agreementDoc = `{"a":1,"arr":[1,2,3],"nested":{"x":{"y":[{"k":"v"}]}},"s~l/ash":true}`

var agreementPatches = []string{
	`[]`,
	`[{"op":"replace","path":"/a","value":2}]`,
	`[{"op":"add","path":"/b","value":{"c":[null,1.5,"x"]}}]`,
	`[{"op":"add","path":"/arr/0","value":0}]`,
	`[{"op":"add","path":"/arr/3","value":4}]`,
	`[{"op":"add","path":"/arr/-","value":4}]`,
	`[{"op":"add","path":"/arr/4","value":4}]`,
	`[{"op":"add","path":"/arr/01","value":4}]`,
	`[{"op":"remove","path":"/arr/1"}]`,
	`[{"op":"remove","path":"/arr/3"}]`,
	`[{"op":"remove","path":"/missing"}]`,
	`[{"op":"replace","path":"/missing","value":1}]`,
	`[{"op":"replace","path":"/nested/x/y/0/k","value":"w"}]`,
	`[{"op":"add","path":"/nested/x/y/0/new","value":[]}]`,
	`[{"op":"add","path":"/nested/x/y/-","value":{"k":2}},{"op":"test","path":"/nested/x/y/1/k","value":2}]`,
	`[{"op":"test","path":"/a","value":1}]`,
	`[{"op":"test","path":"/a","value":2}]`,
	`[{"op":"test","path":"/arr","value":[1,2,3]}]`,
	`[{"op":"move","from":"/a","path":"/b"}]`,
	`[{"op":"move","from":"/arr/0","path":"/arr/2"}]`,
	`[{"op":"move","from":"/nested","path":"/nested/x/z"}]`,
	`[{"op":"copy","from":"/nested","path":"/copy"},{"op":"replace","path":"/copy/x/y/0/k","value":"changed"}]`,
	`[{"op":"copy","from":"/arr","path":"/arr/1"}]`,
	`[{"op":"remove","path":"/s~0l~1ash"}]`,
	`[{"op":"add","path":"/a/b","value":1}]`,
	`[{"op":"replace","path":"","value":{"whole":"new"}}]`,
	`[{"op":"replace","path":"","value":[1]}]`,
	`[{"op":"add","path":"","value":{"z":1}}]`,
	`[{"op":"remove","path":""}]`,
	`[{"op":"add","path":"a","value":1}]`,
	`[{"op":"jump","path":"/a"}]`,
	`[{"op":"add","path":"/a"}]`,
}

// TestApplyValue_AgreesWithApply: the client's in-place patching gives
// what the replicated state's Apply gives.
func TestApplyValue_AgreesWithApply(t *testing.T) {
	for _, patch := range agreementPatches {
		applyBoth(t, []byte(agreementDoc), []byte(patch))
	}
}

// TestApplyValue_DiffsRoundTrip: every patch Diff makes, applied in place,
// gives the target, as it does with Apply.
func TestApplyValue_DiffsRoundTrip(t *testing.T) {
	pairs := [][2]string{
		{`{"a":[1,2,3,4,5,6,7,8,9],"pad":"long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, "}`, `{"a":[1,2,3,4,6,7,8,9,10],"pad":"long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, "}`},
		{`{"n":1,"sent_us":1733449600000000,"pad":"long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, "}`, `{"n":2,"sent_us":1733449600010000,"pad":"long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, long enough to be worth a patch, "}`},
	}
	for _, p := range pairs {
		from, err := Object([]byte(p[0]), 0)
		if err != nil {
			t.Fatal(err)
		}
		to, err := Object([]byte(p[1]), 0)
		if err != nil {
			t.Fatal(err)
		}
		patch, ok := Diff(from, to)
		if !ok {
			t.Fatalf("no patch from %s to %s", from, to)
		}
		applyBoth(t, from, patch)
		var v any
		_ = json.Unmarshal(from, &v)
		if _, err := ApplyValue(v, patch); err != nil {
			t.Fatalf("Diff's patch %s is not applied in place: %v", patch, err)
		}
	}
}

// FuzzApplyValue: on any object and any patch Patch accepts, ApplyValue
// never panics and agrees with Apply.
func FuzzApplyValue(f *testing.F) {
	fuzzPatches(f, func(t *testing.T, doc, patch []byte) { applyBoth(t, doc, patch) })
}

// TestApplyValue_LeavesTheRestToApply: what Apply's library reads its own
// way is refused before doc changes, for the caller to use Apply.
func TestApplyValue_LeavesTheRestToApply(t *testing.T) {
	for _, patch := range []string{
		`[{"op":"replace","path":"","value":3}]`,
		`[{"op":"add","path":"/","value":3}]`,
		`[{"op":"add","path":"/a","value":1},{"op":"copy","from":"/a","path":"/b"}]`,
		`[{"op":"add","path":"/a","value":1},{"op":"move","from":"/a","path":"/b"}]`,
		`[{"op":"add","path":"/a","value":1},{"op":"add","path":"/arr/01","value":1}]`,
	} {
		doc := map[string]any{"arr": []any{1.0}}
		if _, err := ApplyValue(doc, []byte(patch)); !errors.Is(err, ErrNotSimple) {
			t.Fatalf("%s: %v, want ErrNotSimple", patch, err)
		}
		if _, changed := doc["a"]; changed {
			t.Fatalf("%s: doc changed before the refusal", patch)
		}
	}
	if _, err := ApplyValue(map[string]any{}, []byte(`{`)); !errors.Is(err, ErrBadPatch) {
		t.Fatalf("a broken patch: %v, want ErrBadPatch", err)
	}
}
