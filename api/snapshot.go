package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"shoal/consensus"
	"shoal/internal/httpjson"
	"shoal/modules"
)

// Backups is implemented by a Store that writes and restores backups
// (*consensus.Node).
type Backups interface {
	Backup(ctx context.Context, w io.Writer, version string, names map[modules.Tag]string, sections map[string]modules.BackupSection) (consensus.BackupInfo, error)
	RestoreBackup(ctx context.Context, r io.Reader, sections map[string]modules.BackupSection) (consensus.BackupInfo, error)
}

// snapshotPath is the route of backups; PUT on it carries a whole backup,
// exempt from --max-body-bytes and the body timeout (see limitBody).
const snapshotPath = "/v1/snapshot"

// maxBackupBytes bounds a backup sent to PUT /v1/snapshot.
const maxBackupBytes = 64 << 30

var (
	errNoBackups = httpjson.Errorf(http.StatusNotImplemented, "backups_unsupported", "this node cannot write or restore backups")
	errNotLeader = &httpjson.Error{Status: http.StatusServiceUnavailable, Code: "not_leader",
		Message: "only the leader restores a backup", RetryAfter: time.Second}
)

// raftModuleNames maps each Raft module's tag to its ID.
func (s *server) raftModuleNames() map[modules.Tag]string {
	names := map[modules.Tag]string{}
	if s.Modules == nil {
		return names
	}
	for _, m := range s.Modules.Modules() {
		if h, ok := m.(modules.RaftHandler); ok {
			names[h.Tag()] = m.ID()
		}
	}
	return names
}

// backupSections maps the ID of each module that is not in Raft but has
// a section in backups (kv) to it.
func (s *server) backupSections() map[string]modules.BackupSection {
	sections := map[string]modules.BackupSection{}
	if s.Modules == nil {
		return sections
	}
	for _, m := range s.Modules.Modules() {
		if b, ok := m.(modules.BackupSection); ok {
			sections[m.ID()] = b
		}
	}
	return sections
}

// snapshotSave serves GET /v1/snapshot: a backup of every Raft module's
// state as this node holds it after a read barrier (so it holds every
// write acknowledged before the request), and of kv's data as this node
// holds it. It is written to a temporary
// file first, so that a failure is an error answer, not a cut download.
func (s *server) snapshotSave(w http.ResponseWriter, r *http.Request) error {
	b, ok := s.Raft.(Backups)
	if !ok {
		return errNoBackups
	}
	tmp, err := os.CreateTemp("", "shoal-backup-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	info, err := b.Backup(r.Context(), tmp, s.Version, s.raftModuleNames(), s.backupSections())
	if err != nil {
		return err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="shoal-%s-%d.snap"`, info.Node, info.Index))
	h.Set("X-Shoal-Backup-Index", strconv.FormatUint(info.Index, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, tmp) // a client that leaves mid-download has nothing to be told
	return nil
}

// snapshotRestore serves PUT /v1/snapshot: the leader checks the whole
// backup (its checksum) and installs it through Raft on every node. On a
// follower it answers 503 not_leader naming the leader's HTTP address.
func (s *server) snapshotRestore(w http.ResponseWriter, r *http.Request) error {
	b, ok := s.Raft.(Backups)
	if !ok {
		return errNoBackups
	}
	if !s.Raft.IsLeader() {
		e := errNotLeader
		if leader, _ := s.Raft.Leader(); leader != "" {
			for _, m := range s.Members.Members() {
				if m.Name == leader && m.Meta.HTTPAddr != "" {
					e = e.WithMessage("only the leader restores a backup: send it to %s (%s)", leader, m.Meta.HTTPAddr).
						WithDetail("leader", leader).WithDetail("leader_http_addr", m.Meta.HTTPAddr)
				}
			}
		}
		return e
	}
	info, err := b.RestoreBackup(r.Context(), r.Body, s.backupSections())
	if err != nil {
		return err
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"restored": info})
	return nil
}
