package consensus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"shoal/internal/httpjson"
	"shoal/modules"
)

// A backup is one file that holds the state of every Raft module at one
// point of the log, self-contained, and the data of the modules that are
// not in Raft (docs/operations.md, "Backups"):
//
//	"shoal-backup-v2\n"
//	header: one line of JSON (BackupInfo), "\n"
//	body: a snapshot in the FSM's format (snapshot.go), each module's
//	      section in its portable form (modules.PortableSnapshotter);
//	      then each other section (modules.BackupSection): uvarint name
//	      length, name, the data in chunks as a snapshot's sections
//	      (chunkWriter); then a 0 (an empty name)
//	trailer: SHA-256 of everything before it, 32 bytes
//
// Version 1 (the previous release) is the same without the other
// sections; it is still restored.
//
// A Raft snapshot may refer to files on the node that took it (the log
// module's segment files); a backup never does.
var (
	backupMagic   = []byte("shoal-backup-v2\n")
	backupMagicV1 = []byte("shoal-backup-v1\n")
)

// maxSectionName bounds the name of a backup's other section.
const maxSectionName = 64

// BackupInfo is a backup's header.
type BackupInfo struct {
	// Node took the backup, at Raft Index and Term.
	Node  string `json:"node"`
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Created is when (the node's clock).
	Created time.Time `json:"created"`
	// Version is the shoal release that wrote it.
	Version string `json:"version"`
	// Modules are the Raft modules whose state it holds, by tag.
	Modules map[string]int `json:"modules"`
	// Sections are the other modules whose data it holds (kv), in order.
	Sections []string `json:"sections,omitempty"`
	// Size and SHA256 are filled by InspectBackup: the body's size and the
	// checksum in the trailer.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Errors of backups.
var (
	// ErrBadBackup: not a backup, a damaged one (checksum), or one this
	// node cannot restore; the caller's input, answered 400.
	ErrBadBackup = httpjson.BadRequest("bad_backup", "not a valid shoal backup")
)

// Backup writes a backup of this node's state machine to w, after a read
// barrier: it holds every command committed before the call. It takes a
// Raft snapshot (or reuses the newest if nothing was applied since) and
// turns each module's section into its portable form. Then it writes the
// sections of the modules that are not in Raft, by name.
func (n *Node) Backup(ctx context.Context, w io.Writer, version string, names map[modules.Tag]string, sections map[string]modules.BackupSection) (BackupInfo, error) {
	if err := n.ReadIndex(ctx); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	meta, rc, err := n.openSnapshot()
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	defer rc.Close()
	info := BackupInfo{Node: n.cfg.NodeID, Index: meta.Index, Term: meta.Term, Created: time.Now().UTC(), Version: version, Modules: map[string]int{}}
	for tag, name := range names {
		info.Modules[name] = int(tag)
	}
	for name := range sections {
		info.Sections = append(info.Sections, name)
	}
	slices.Sort(info.Sections)
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, sum), snapshotChunk)
	bw.Write(backupMagic)
	header, _ := json.Marshal(info)
	bw.Write(append(header, '\n'))
	if err := n.portable(bufio.NewReaderSize(rc, snapshotChunk), bw); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	for _, name := range info.Sections {
		if len(name) == 0 || len(name) > maxSectionName {
			return BackupInfo{}, fmt.Errorf("backup: section name %q", name)
		}
		bw.Write(binary.AppendUvarint(nil, uint64(len(name))))
		bw.WriteString(name)
		cw := &chunkWriter{w: bw}
		if err := sections[name].SaveBackup(ctx, cw); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: section %s: %w", name, err)
		}
		if err := cw.Close(); err != nil {
			return BackupInfo{}, fmt.Errorf("backup: section %s: %w", name, err)
		}
	}
	bw.WriteByte(0)
	if err := bw.Flush(); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	if _, err := w.Write(sum.Sum(nil)); err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// openSnapshot takes a Raft snapshot now, or opens the newest one when
// nothing was applied since it.
func (n *Node) openSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	f := n.raft.Snapshot()
	if err := f.Error(); err == nil {
		return f.Open()
	} else if !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, nil, err
	}
	snaps, err := n.snaps.List()
	if err != nil || len(snaps) == 0 {
		return nil, nil, fmt.Errorf("no snapshot to back up: %w", err)
	}
	return n.snaps.Open(snaps[0].ID)
}

// portable copies a snapshot in the FSM's format from r to w, passing
// each section of a module that has a portable form through it.
func (n *Node) portable(r *bufio.Reader, w *bufio.Writer) error {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return errors.New("the raft snapshot is not a shoal snapshot")
	}
	applied, err := binary.ReadUvarint(r)
	if err != nil {
		return fmt.Errorf("read applied index: %w", noEOF(err))
	}
	w.Write(snapshotMagic)
	w.Write(binary.AppendUvarint(nil, applied))
	for {
		tag, err := r.ReadByte()
		if err != nil {
			return fmt.Errorf("read section tag: %w", noEOF(err))
		}
		w.WriteByte(tag)
		if tag == byte(modules.TagNone) {
			return nil
		}
		in := &chunkReader{r: r}
		out := &chunkWriter{w: w}
		if p, ok := n.fsm.handlers[modules.Tag(tag)].(modules.PortableSnapshotter); ok {
			err = p.PortableSnapshot(in, out)
		} else {
			_, err = io.Copy(out, in)
		}
		if err == nil {
			err = in.drain()
		}
		if err == nil {
			err = out.Close()
		}
		if err != nil {
			return fmt.Errorf("section of tag %d: %w", tag, err)
		}
	}
}

// maxBackupHeader bounds a backup's header line.
const maxBackupHeader = 64 << 10

// InspectBackup reads a whole backup from r, checks its checksum and
// returns its header, with the body's size and checksum.
func InspectBackup(r io.Reader) (BackupInfo, error) {
	info, body, err := readBackupHeader(r)
	if err != nil {
		return BackupInfo{}, err
	}
	n, err := io.Copy(io.Discard, body)
	if err != nil {
		return BackupInfo{}, err
	}
	info.Size = n
	info.SHA256 = fmt.Sprintf("%x", body.want)
	return info, nil
}

// readBackupHeader reads the magic and the header; the returned reader
// yields the body and fails at its end if the checksum does not match.
func readBackupHeader(r io.Reader) (BackupInfo, *backupBody, error) {
	br := bufio.NewReaderSize(r, maxBackupHeader) // a longer header line fails ReadSlice
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, backupMagic) && !bytes.Equal(magic, backupMagicV1) {
		return BackupInfo{}, nil, fmt.Errorf("%w: bad magic", ErrBadBackup)
	}
	line, err := br.ReadSlice('\n')
	if err != nil {
		return BackupInfo{}, nil, fmt.Errorf("%w: no header line", ErrBadBackup)
	}
	var info BackupInfo
	if err := json.Unmarshal(line, &info); err != nil {
		return BackupInfo{}, nil, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	sum := sha256.New()
	sum.Write(magic)
	sum.Write(line)
	return info, &backupBody{r: br, sum: sum, v1: bytes.Equal(magic, backupMagicV1)}, nil
}

// backupBody yields a backup's body: it holds back the last 32 bytes read
// (the trailer, once the input ends) and at the end compares them with the
// checksum of everything before, failing the last read on a mismatch.
type backupBody struct {
	r     *bufio.Reader
	sum   hash.Hash
	chunk []byte // read buffer, reused
	hold  []byte // the last bytes read, not yet known to be body
	ready []byte // body bytes not yet returned
	want  []byte // the trailer, once read
	err   error  // what Read returns after ready: io.EOF or a bad checksum
	v1    bool   // a version 1 backup: no other sections after the snapshot
}

func (b *backupBody) Read(p []byte) (int, error) {
	for len(b.ready) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.chunk == nil {
			b.chunk = make([]byte, 64<<10)
		}
		n, err := b.r.Read(b.chunk)
		b.hold = append(b.hold, b.chunk[:n]...)
		if k := len(b.hold) - sha256.Size; k > 0 {
			b.sum.Write(b.hold[:k])
			b.ready = append(b.ready, b.hold[:k]...)
			b.hold = append([]byte(nil), b.hold[k:]...)
		}
		switch {
		case errors.Is(err, io.EOF):
			switch {
			case len(b.hold) < sha256.Size:
				b.err = fmt.Errorf("%w: truncated", ErrBadBackup)
			case !bytes.Equal(b.sum.Sum(nil), b.hold):
				b.err = fmt.Errorf("%w: checksum mismatch (damaged or truncated)", ErrBadBackup)
			default:
				b.want, b.err = b.hold, io.EOF
			}
		case err != nil:
			return 0, err
		}
	}
	m := copy(p, b.ready)
	b.ready = b.ready[m:]
	return m, nil
}

// RestoreBackup replaces the state of every Raft module with a backup's,
// through Raft: the leader installs it as a snapshot and every follower
// gets it. Then it gives each other section to its module (sections, by
// name). Only the leader can (ErrNotLeader). The backup is read whole and
// checked, every section included, before anything changes; commands
// applied meanwhile are replaced too.
func (n *Node) RestoreBackup(ctx context.Context, r io.Reader, sections map[string]modules.BackupSection) (BackupInfo, error) {
	if !n.IsLeader() {
		return BackupInfo{}, ErrNotLeader
	}
	info, body, err := readBackupHeader(r)
	if err != nil {
		return BackupInfo{}, err
	}
	tmp, err := os.CreateTemp("", "shoal-restore-*")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("restore backup: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, body); err != nil {
		return BackupInfo{}, fmt.Errorf("restore backup: %w", err)
	}
	snapEnd, err := walkBackupBody(tmp, 0, body.v1, func(name string, r io.Reader) error {
		sec, ok := sections[name]
		if !ok {
			return fmt.Errorf("%w: it holds the data of module %q, which this node does not run", ErrBadBackup, name)
		}
		if err := sec.CheckBackup(r); err != nil {
			return fmt.Errorf("%w: section %s: %v", ErrBadBackup, name, err)
		}
		return nil
	})
	if err != nil {
		return BackupInfo{}, err
	}
	// The snapshot becomes the one at the index after the last one raft
	// holds; the modules must know it (files they write carry Raft
	// indexes). Commands may still arrive while raft restores, moving its
	// index up, so this is a lower bound: modules then see an index at or
	// below the true one, which only makes them write later commands, never
	// skip one.
	stats := n.raft.Stats()
	last, _ := parseUint(stats["last_log_index"])
	snap, _ := parseUint(stats["last_snapshot_index"])
	index := max(last, snap) + 1
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return BackupInfo{}, fmt.Errorf("restore backup: %w", err)
	}
	br := bufio.NewReaderSize(tmp, len(snapshotMagic)+binary.MaxVarintLen64)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return BackupInfo{}, fmt.Errorf("%w: the body is not a shoal snapshot", ErrBadBackup)
	}
	oldApplied, err := binary.ReadUvarint(br)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: applied index: %v", ErrBadBackup, err)
	}
	head := append(append([]byte(nil), snapshotMagic...), binary.AppendUvarint(nil, index)...)
	oldHead := int64(len(snapshotMagic) + len(binary.AppendUvarint(nil, oldApplied)))
	rest := snapEnd - oldHead
	if _, err := tmp.Seek(oldHead, io.SeekStart); err != nil {
		return BackupInfo{}, fmt.Errorf("restore backup: %w", err)
	}
	rewritten := io.MultiReader(bytes.NewReader(head), io.LimitReader(tmp, rest))
	cfg, err := n.Configuration()
	if err != nil {
		return BackupInfo{}, err
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: info.Index, Term: info.Term, Configuration: cfg,
		Size: int64(len(head)) + rest}
	timeout := 10 * time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.raft.Restore(meta, rewritten, timeout); err != nil {
		switch {
		case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// The outcome is unknown: a restore replaces the whole state, so
			// sending the backup again is safe.
			return BackupInfo{}, fmt.Errorf("restore backup: %w", ErrLeadershipLost)
		case errors.Is(err, raft.ErrNotLeader):
			return BackupInfo{}, fmt.Errorf("restore backup: %w", ErrNotLeader)
		}
		return BackupInfo{}, fmt.Errorf("restore backup: %w", err)
	}
	n.cfg.Logger.Warn("restored a backup: every raft module's state was replaced", "backup_node", info.Node, "backup_index", info.Index, "index", index)
	if _, err := walkBackupBody(tmp, snapEnd, body.v1, func(name string, r io.Reader) error {
		if err := sections[name].RestoreBackup(ctx, r); err != nil {
			return fmt.Errorf("restore backup: the raft modules' state was restored, but not %s's data: %w", name, err)
		}
		n.cfg.Logger.Warn("restored a backup's section", "module", name)
		return nil
	}); err != nil {
		return BackupInfo{}, err
	}
	return info, nil
}

// walkBackupBody reads the body of a backup in f (the snapshot, then the
// other sections) and calls fn with each other section's name and data.
// With from 0 it reads the snapshot's sections (without decoding them) to
// find where they end, and returns that offset; with from at that offset,
// it starts at the other sections. Anything after the end is an error.
func walkBackupBody(f *os.File, from int64, v1 bool, fn func(name string, r io.Reader) error) (int64, error) {
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, fmt.Errorf("restore backup: %w", err)
	}
	cr := &countingReader{r: f}
	br := bufio.NewReaderSize(cr, snapshotChunk)
	snapEnd := from
	if from == 0 {
		magic := make([]byte, len(snapshotMagic))
		if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
			return 0, fmt.Errorf("%w: the body is not a shoal snapshot", ErrBadBackup)
		}
		if _, err := binary.ReadUvarint(br); err != nil {
			return 0, fmt.Errorf("%w: applied index: %v", ErrBadBackup, noEOF(err))
		}
		for {
			tag, err := br.ReadByte()
			if err != nil {
				return 0, fmt.Errorf("%w: section tag: %v", ErrBadBackup, noEOF(err))
			}
			if tag == byte(modules.TagNone) {
				break
			}
			if err := (&chunkReader{r: br}).drain(); err != nil {
				return 0, fmt.Errorf("%w: section of tag %d: %v", ErrBadBackup, tag, err)
			}
		}
		snapEnd = cr.n - int64(br.Buffered())
	}
	if !v1 {
		for {
			size, err := binary.ReadUvarint(br)
			if err != nil {
				return 0, fmt.Errorf("%w: section name: %v", ErrBadBackup, noEOF(err))
			}
			if size == 0 {
				break
			}
			if size > maxSectionName {
				return 0, fmt.Errorf("%w: a section name of %d bytes", ErrBadBackup, size)
			}
			name := make([]byte, size)
			if _, err := io.ReadFull(br, name); err != nil {
				return 0, fmt.Errorf("%w: section name: %v", ErrBadBackup, noEOF(err))
			}
			data := &chunkReader{r: br}
			if err := fn(string(name), data); err != nil {
				return 0, err
			}
			if err := data.drain(); err != nil {
				return 0, fmt.Errorf("%w: section %s: %v", ErrBadBackup, name, err)
			}
		}
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%w: data after the end of the body", ErrBadBackup)
	}
	return snapEnd, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func parseUint(s string) (uint64, error) {
	var v uint64
	_, err := fmt.Sscan(s, &v)
	return v, err
}
