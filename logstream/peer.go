package logstream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"shoal/internal/wire"
	"shoal/logstream/segment"
	"shoal/modules"
)

// The "segment" peer stream serves a snapshot's segment files to a node
// that installs the snapshot (snapshot.go). Over the cluster port's
// authenticated connection, the fetching node sends one request,
//
//	len u32 (little-endian), then: len(snapshot) snapshot len(dir) dir len(file) file size
//
// strings length-prefixed and size a uvarint, and the serving node answers
// with one status byte: 0 followed by exactly size bytes of the file, or 1
// followed by a u16 length and a message. Every name is checked against
// its format before it touches a path, so a request cannot name a file
// outside the snapshot directory.
const segmentStream = "segment"

// Bounds of the segment stream.
const (
	maxSegmentRequest = 1 << 10
	// segmentRequestTimeout bounds reading a request and opening a
	// stream; a transfer itself is bounded by segmentTransferTimeout.
	segmentRequestTimeout  = 10 * time.Second
	segmentTransferTimeout = 10 * time.Minute
)

// fetchSegment opens the first ref.Size bytes of a snapshot's segment file
// on node.
func (l *Log) fetchSegment(node, snap, dir string, ref segment.SegmentRef) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(context.Background(), segmentRequestTimeout)
	defer cancel()
	conn, err := l.host.Cluster().OpenStream(ctx, node, segmentStream)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(segmentTransferTimeout))
	req := wire.AppendBytes(nil, snap)
	req = wire.AppendBytes(req, dir)
	req = wire.AppendBytes(req, ref.Name)
	req = wire.AppendUvarint(req, uint64(ref.Size))
	msg := binary.LittleEndian.AppendUint32(nil, uint32(len(req)))
	if _, err := conn.Write(append(msg, req...)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("request segment %s: %w", ref.Name, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	status, err := br.ReadByte()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("request segment %s: %w", ref.Name, err)
	}
	if status != 0 {
		var n [2]byte
		text := make([]byte, 0, 256)
		if _, err := io.ReadFull(br, n[:]); err == nil {
			text = make([]byte, min(binary.LittleEndian.Uint16(n[:]), 1024))
			_, _ = io.ReadFull(br, text)
		}
		conn.Close()
		return nil, fmt.Errorf("segment %s of snapshot %s: %s refused: %s", ref.Name, snap, node, text)
	}
	return &segmentReader{Reader: io.LimitReader(br, ref.Size), conn: conn}, nil
}

type segmentReader struct {
	io.Reader
	conn net.Conn
}

func (r *segmentReader) Close() error { return r.conn.Close() }

// HandlePeerStream implements modules.PeerStreamHandler: it serves one
// segment file of a snapshot directory of this node.
func (l *Log) HandlePeerStream(ctx context.Context, from, name string, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if name != segmentStream {
		refuse(conn, "unknown stream")
		return
	}
	_ = conn.SetDeadline(time.Now().Add(segmentRequestTimeout))
	var n [4]byte
	if _, err := io.ReadFull(conn, n[:]); err != nil {
		return
	}
	size := binary.LittleEndian.Uint32(n[:])
	if size > maxSegmentRequest {
		refuse(conn, "request too large")
		return
	}
	req := make([]byte, size)
	if _, err := io.ReadFull(conn, req); err != nil {
		return
	}
	path, want, err := l.segmentPath(req)
	if err != nil {
		refuse(conn, err.Error())
		return
	}
	f, err := os.Open(path)
	if err != nil {
		refuse(conn, "no such snapshot file on "+l.nodeName())
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() < want {
		refuse(conn, "the snapshot file is shorter than asked")
		return
	}
	_ = conn.SetDeadline(time.Now().Add(segmentTransferTimeout))
	if _, err := conn.Write([]byte{0}); err != nil {
		return
	}
	sent, err := io.Copy(conn, io.LimitReader(f, want))
	if err != nil || sent != want {
		l.logger.Warn("serving a log snapshot file failed", "to", from, "file", path, "sent", sent, "err", err)
		return
	}
	l.m.segmentsServed.Inc()
}

// segmentPath decodes and checks a segment request.
func (l *Log) segmentPath(req []byte) (string, int64, error) {
	d := wire.NewDecoder(req)
	snap := d.String("snapshot", 64)
	dir := d.String("directory", maxNameLen+24)
	file := d.String("file", 64)
	size := d.Uvarint("size")
	if err := d.End(); err != nil {
		return "", 0, err
	}
	if _, _, ok := parseDirName(dir); !ok || !validSnapshotName(snap) || !validSegmentName(file) || size > 1<<40 {
		return "", 0, errors.New("malformed request")
	}
	return filepath.Join(l.disk.snapshots, snap, dir, file), int64(size), nil
}

func refuse(conn net.Conn, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	b := append([]byte{1}, binary.LittleEndian.AppendUint16(nil, uint16(len(msg)))...)
	_, _ = conn.Write(append(b, msg...))
}

var _ modules.PeerStreamHandler = (*Log)(nil)
