package modules

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder is a module that records its lifecycle calls into a shared log.
type recorder struct {
	id       string
	log      *[]string
	startErr error
	tag      Tag
}

func (r *recorder) ID() string             { return r.id }
func (r *recorder) Provision(h Host) error { *r.log = append(*r.log, "provision "+r.id); return nil }
func (r *recorder) Start(context.Context) error {
	*r.log = append(*r.log, "start "+r.id)
	return r.startErr
}
func (r *recorder) Stop(context.Context) error { *r.log = append(*r.log, "stop "+r.id); return nil }

type taggedRecorder struct{ recorder }

func (t *taggedRecorder) Tag() Tag                             { return t.tag }
func (t *taggedRecorder) NotifyMsg([]byte)                     {}
func (t *taggedRecorder) ApplyCommand(Command) ([]byte, error) { return nil, nil }

// fakeHost is a Host with nothing behind it; the manager only passes it on.
type fakeHost struct{ Host }

func (fakeHost) Logger() *slog.Logger              { return slog.Default() }
func (fakeHost) Registerer() prometheus.Registerer { return prometheus.NewRegistry() }

func newHost(Info, Module, Config) (Host, error) { return fakeHost{}, nil }

func infoOf(id string, log *[]string, startErr error) Info {
	return Info{ID: id, New: func() Module { return &recorder{id: id, log: log, startErr: startErr} }}
}

func TestManager_StartsInOrderStopsInReverse(t *testing.T) {
	var log []string
	m, err := NewManager([]Info{infoOf("a", &log, nil), infoOf("b", &log, nil), infoOf("c", &log, nil)}, nil, newHost)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"provision a", "provision b", "provision c", "start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
}

func TestManager_FailedStartStopsTheStartedOnes(t *testing.T) {
	var log []string
	boom := errors.New("boom")
	m, err := NewManager([]Info{infoOf("a", &log, nil), infoOf("b", &log, boom), infoOf("c", &log, nil)}, nil, newHost)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	want := []string{"provision a", "provision b", "provision c", "start a", "start b", "stop a"}
	if !slices.Equal(log, want) {
		t.Fatalf("got %v, want %v", log, want)
	}
	// A second Stop has nothing left to stop.
	log = nil
	if err := m.Stop(context.Background()); err != nil || len(log) != 0 {
		t.Fatalf("second stop: err %v, calls %v", err, log)
	}
}

func TestManager_RejectsDuplicateTags(t *testing.T) {
	var log []string
	mk := func(id string) Info {
		return Info{ID: id, New: func() Module { return &taggedRecorder{recorder{id: id, log: &log, tag: TagLog}} }}
	}
	_, err := NewManager([]Info{mk("x"), mk("y")}, nil, newHost)
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Fatalf("got %v, want a duplicate tag error", err)
	}
}

type badConfig struct{}

func (badConfig) Validate() error { return errors.New("limit must be positive") }

func TestManager_ValidatesConfigBeforeProvision(t *testing.T) {
	var log []string
	info := infoOf("a", &log, nil)
	_, err := NewManager([]Info{info}, map[string]Config{"a": badConfig{}}, newHost)
	if err == nil || !strings.Contains(err.Error(), "limit must be positive") {
		t.Fatalf("got %v, want the config error", err)
	}
	if len(log) != 0 {
		t.Fatalf("provisioned despite a bad config: %v", log)
	}
}

func TestManager_RejectsAModuleReportingAnotherID(t *testing.T) {
	var log []string
	info := Info{ID: "a", New: func() Module { return &recorder{id: "b", log: &log} }}
	if _, err := NewManager([]Info{info}, nil, newHost); err == nil {
		t.Fatal("a module whose ID differs from its registration was accepted")
	}
}

func TestRegister_PanicsOnBadEntries(t *testing.T) {
	newMod := func() Module { return nil }
	cases := map[string]Info{
		"empty id":  {ID: "", New: newMod},
		"nil New":   {ID: "zz-nil-new"},
		"duplicate": {ID: "zz-dup", New: newMod},
	}
	Register(Info{ID: "zz-dup", New: newMod})
	for name, info := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("Register(%+v) did not panic", info)
				}
			}()
			Register(info)
		})
	}
}

func TestResolve_OrdersAndRejectsUnknown(t *testing.T) {
	newMod := func() Module { return nil }
	Register(Info{ID: "zz-b", New: newMod})
	Register(Info{ID: "zz-a", New: newMod})
	infos, err := Resolve([]string{"zz-b", " zz-a "})
	if err != nil {
		t.Fatal(err)
	}
	if got := IDs(infos); !slices.Equal(got, []string{"zz-a", "zz-b"}) {
		t.Fatalf("got %v, want the canonical order zz-a, zz-b", got)
	}
	if _, err := Resolve([]string{"nope"}); err == nil || !strings.Contains(err.Error(), "unknown module") {
		t.Fatalf("got %v, want unknown module", err)
	}
	if _, err := Resolve([]string{"zz-a", "zz-a"}); err == nil {
		t.Fatal("a repeated module was accepted")
	}
}

// TestSortInfos_RequiredModulesFirst: a module starts after the modules
// it requires, otherwise by ID; a missing requirement or a cycle is an
// error.
func TestSortInfos_RequiredModulesFirst(t *testing.T) {
	infos := []Info{
		{ID: "objects", Requires: []string{"log", "kv"}},
		{ID: "zzz"},
		{ID: "log"},
		{ID: "kv"},
		{ID: "aaa", Requires: []string{"zzz"}},
	}
	got, err := sortInfos(infos)
	if err != nil {
		t.Fatal(err)
	}
	if ids := IDs(got); !slices.Equal(ids, []string{"zzz", "aaa", "kv", "log", "objects"}) {
		t.Fatalf("got %v", ids)
	}
	if _, err := sortInfos([]Info{{ID: "a", Requires: []string{"b"}}}); err == nil || !strings.Contains(err.Error(), `requires module "b"`) {
		t.Fatalf("missing requirement: %v", err)
	}
	if _, err := sortInfos([]Info{{ID: "a", Requires: []string{"b"}}, {ID: "b", Requires: []string{"a"}}}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: %v", err)
	}
}
