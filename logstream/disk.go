package logstream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"shoal/logstream/segment"
	"shoal/modules"
)

// disk is where a node keeps its logs (docs/log.md, "On disk"):
//
//	<data dir>/logs/<name>@<created>/          one store per log
//	<data dir>/logs/<name>@<created>.gone      a log this node deleted
//	<data dir>/snapshots/<index>-<nanos>/<name>@<created>/*.seg
//
// A log's directory carries the Raft index of the command that created it,
// so a log deleted and created again under the same name never meets its
// predecessor's files. Snapshot directories hold hard links to segment
// files (see snapshot.go).
type disk struct {
	logs, snapshots string
	cfg             segment.Config
}

func newDisk(dataDir string, cfg segment.Config) *disk {
	return &disk{
		logs:      filepath.Join(dataDir, "logs"),
		snapshots: filepath.Join(dataDir, "snapshots"),
		cfg:       cfg,
	}
}

// init creates the directories and removes what an interrupted delete or
// install left.
func (d *disk) init() error {
	for _, dir := range []string{d.logs, d.snapshots} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("log directories: %w", err)
		}
	}
	return segment.RemoveLeftovers(d.logs)
}

// dirName is the directory name of the log name created at index created.
func dirName(name string, created uint64) string {
	return name + "@" + strconv.FormatUint(created, 10)
}

// parseDirName splits a log directory name; ok is false for anything else.
func parseDirName(s string) (name string, created uint64, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", 0, false
	}
	created, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || s[i+1:] != strconv.FormatUint(created, 10) || !modules.ValidAPIName(s[:i]) {
		return "", 0, false
	}
	return s[:i], created, true
}

func (d *disk) path(name string, created uint64) string {
	return filepath.Join(d.logs, dirName(name, created))
}

// open opens (or creates) the store of a log.
func (d *disk) open(name string, created uint64) (*segment.Store, error) {
	return segment.Open(d.path(name, created), d.cfg)
}

// exists reports whether the log has a directory.
func (d *disk) exists(name string, created uint64) bool {
	fi, err := os.Stat(d.path(name, created))
	return err == nil && fi.IsDir()
}

const goneSuffix = ".gone"

// markDeleted records, durably, that this node deletes the log's directory
// on purpose, before it does.
func (d *disk) markDeleted(ls *logState) error {
	f, err := os.OpenFile(d.path(ls.name, ls.created)+goneSuffix, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(d.logs)
}

// deleted reports whether this node deleted the log's directory.
func (d *disk) deleted(name string, created uint64) bool {
	_, err := os.Stat(d.path(name, created) + goneSuffix)
	return err == nil
}

// entries lists the log directories and deletion markers on disk.
func (d *disk) entries() (dirs, gone []string, err error) {
	ents, err := os.ReadDir(d.logs)
	if err != nil {
		return nil, nil, fmt.Errorf("list log directories: %w", err)
	}
	for _, e := range ents {
		switch {
		case e.IsDir():
			if _, _, ok := parseDirName(e.Name()); ok {
				dirs = append(dirs, e.Name())
			}
		case strings.HasSuffix(e.Name(), goneSuffix):
			if _, _, ok := parseDirName(strings.TrimSuffix(e.Name(), goneSuffix)); ok {
				gone = append(gone, e.Name())
			}
		}
	}
	return dirs, gone, nil
}

// removeLog removes a log directory that no state refers to.
func (d *disk) removeLog(dir string) error {
	if err := os.RemoveAll(filepath.Join(d.logs, dir)); err != nil {
		return fmt.Errorf("remove log directory: %w", err)
	}
	return nil
}

// keepSnapshots is how many persisted snapshot directories are kept: Raft
// retains two snapshots, and the newest may be sent to a follower while
// the next one is taken.
const keepSnapshots = 3

// persistedMark is the file Persist leaves in a snapshot directory.
const persistedMark = "persisted"

// snapshotDirs lists the snapshot directories, oldest first (their names
// sort like the Raft indexes they start with).
func (d *disk) snapshotDirs() ([]string, error) {
	ents, err := os.ReadDir(d.snapshots)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list log snapshots: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && validSnapshotName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// pruneSnapshots removes snapshot directories older than the newest
// keepSnapshots persisted ones, and every one a newer persisted snapshot
// makes useless (a snapshot whose Persist failed).
func (d *disk) pruneSnapshots() error {
	names, err := d.snapshotDirs()
	if err != nil {
		return err
	}
	kept := 0
	for i := len(names) - 1; i >= 0; i-- {
		dir := filepath.Join(d.snapshots, names[i])
		if _, err := os.Stat(filepath.Join(dir, persistedMark)); err == nil && kept < keepSnapshots {
			kept++
			continue
		}
		if kept == 0 {
			continue // newer than every persisted one: may be in Persist now
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove log snapshot: %w", err)
		}
	}
	return nil
}

// snapshotName names the snapshot directory of the Raft snapshot at
// index, taken at nanos (two snapshots may share an index).
func snapshotName(index uint64, nanos int64) string {
	return fmt.Sprintf("%020d-%019d", index, nanos)
}

func validSnapshotName(s string) bool {
	if len(s) != 40 || s[20] != '-' {
		return false
	}
	for i, c := range []byte(s) {
		if i != 20 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// validSegmentName reports whether s is a segment file's name.
func validSegmentName(s string) bool {
	if len(s) != 24 || !strings.HasSuffix(s, ".seg") {
		return false
	}
	for _, c := range []byte(s[:20]) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// syncDir is segment.SyncDir.
func syncDir(dir string) error { return segment.SyncDir(dir) }

// syncFile fsyncs a file by name.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
