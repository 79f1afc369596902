package replication

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"shoal/internal/httpjson"
	"shoal/internal/wire"
	"shoal/modules"
)

// Routes mounts the module's routes on the /v1 router. Handlers run
// concurrently with each other and with replication.
func (m *Replication) Routes(r chi.Router) {
	m.init()
	r.Route("/files", func(r chi.Router) {
		r.Get("/", httpjson.Handle(m.handleList))
		r.Get("/*", httpjson.Handle(m.handleGet))
		r.Head("/*", httpjson.Handle(m.handleGet))
		r.Put("/*", httpjson.Handle(m.handleWrite(opWriteReplace)))
		r.Post("/*", httpjson.Handle(m.handleWrite(opWriteAppend)))
		r.Delete("/*", httpjson.Handle(m.handleWrite(opWriteDelete)))
	})
	r.Get("/replication/status", httpjson.Handle(m.handleStatus))
}

// pathParam returns the validated file path of the URL.
func pathParam(r *http.Request) (string, error) {
	p := chi.URLParam(r, "*")
	if r.URL.RawPath != "" { // chi routed on the escaped path
		u, err := url.PathUnescape(p)
		if err != nil {
			return "", ErrInvalidPath.WithMessage("the path is not correctly escaped")
		}
		p = u
	}
	if !validPath(p) {
		return "", ErrInvalidPath.WithMessage("invalid path %q: a path is 1 to %d bytes of UTF-8, relative, without '.', '..' or empty components, without control characters, and not under %s", p, maxPathLen, reservedDir)
	}
	return p, nil
}

func (m *Replication) handleWrite(op writeOp) httpjson.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !m.track() {
			return ErrShuttingDown
		}
		defer m.untrack()
		p, err := pathParam(r)
		if err != nil {
			return err
		}
		if op == opWriteAppend {
			if _, ok := r.URL.Query()["append"]; !ok {
				return ErrInvalidParameter.WithMessage("POST appends: add ?append")
			}
		}
		var data []byte
		if op != opWriteDelete {
			if data, err = io.ReadAll(io.LimitReader(r.Body, maxData+1)); err != nil {
				return err
			}
			if len(data) > maxData {
				return ErrTooLarge.WithMessage("the content is larger than %d bytes", maxData)
			}
		}
		res, err := m.write(r.Context(), op, p, data)
		result := "ok"
		if err != nil {
			result = httpjson.As(err).Code
		}
		if m.m != nil {
			m.m.writes.WithLabelValues(op.String(), result).Inc()
		}
		if err != nil {
			return err
		}
		httpjson.WriteJSON(w, http.StatusOK, res)
		return nil
	}
}

// write applies a write on this node if it leads, or forwards it to the
// replication leader over the cluster port.
func (m *Replication) write(ctx context.Context, op writeOp, p string, data []byte) (writeResult, error) {
	if l := m.current.Load(); l != nil {
		return l.write(ctx, op, p, data)
	}
	if m.notInSync.Load() {
		return writeResult{}, ErrNotInSync
	}
	st := m.state()
	if st.leader == "" || st.leader == m.host.NodeName() {
		return writeResult{}, ErrNoLeader
	}
	out, err := m.host.Cluster().Call(ctx, st.leader, "write", encodeWrite(op, p, data))
	var e *httpjson.Error
	switch {
	case err == nil:
	case errors.As(err, &e):
		return writeResult{}, e
	case errors.Is(err, modules.ErrNotDelivered):
		return writeResult{}, ErrNoLeader.WithMessage("the replication leader %s is unreachable", st.leader)
	default:
		return writeResult{}, ErrOutcomeUnknown
	}
	var res writeResult
	if err := json.Unmarshal(out, &res); err != nil {
		return writeResult{}, fmt.Errorf("decode the leader's answer: %w", err)
	}
	return res, nil
}

// encodeWrite is a forwarded write: op, path, data.
func encodeWrite(op writeOp, p string, data []byte) []byte {
	b := []byte{byte(op)}
	b = wire.AppendBytes(b, p)
	return wire.AppendBytes(b, data)
}

func decodeWrite(b []byte) (writeOp, string, []byte, error) {
	d := wire.NewDecoder(b)
	op := writeOp(d.Byte("op"))
	p := d.String("path", maxPathLen)
	data := d.Bytes("data", maxData)
	if err := d.End(); err != nil {
		return 0, "", nil, httpjson.BadRequest("bad_request", "malformed forwarded write: %s", err)
	}
	if op < opWriteReplace || op > opWriteDelete {
		return 0, "", nil, httpjson.BadRequest("bad_request", "unknown write op %d", op)
	}
	if !validPath(p) {
		return 0, "", nil, ErrInvalidPath.WithMessage("invalid path %q", p)
	}
	return op, p, data, nil
}

// HandlePeer answers calls from the module on other nodes: forwarded
// writes ("write") and the leader's status ("status").
func (m *Replication) HandlePeer(ctx context.Context, from, method string, body []byte) ([]byte, error) {
	if !m.track() {
		return nil, ErrShuttingDown
	}
	defer m.untrack()
	switch method {
	case "write":
		op, p, data, err := decodeWrite(body)
		if err != nil {
			return nil, err
		}
		l := m.current.Load()
		if l == nil {
			return nil, ErrNoLeader.WithMessage("%s is not the replication leader", m.host.NodeName())
		}
		res, err := l.write(ctx, op, p, data)
		if err != nil {
			return nil, err
		}
		return json.Marshal(res)
	case "status":
		return json.Marshal(m.localStatus())
	}
	return nil, httpjson.Errorf(http.StatusNotImplemented, "no_such_method", "no method %q", method)
}

func (m *Replication) handleGet(w http.ResponseWriter, r *http.Request) error {
	if !m.track() {
		return ErrShuttingDown
	}
	defer m.untrack()
	p, err := pathParam(r)
	if err != nil {
		return err
	}
	f, fi, err := m.store.openRegular(p)
	if err != nil {
		return clientPathError(p, err)
	}
	defer f.Close()
	e, err := m.store.entry(p, f, fi)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+hexSum(e.Sum)+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", fi.ModTime(), io.NewSectionReader(f, 0, fi.Size()))
	return nil
}

// fileJSON is one file of a listing.
type fileJSON struct {
	Path   string    `json:"path"`
	Size   uint64    `json:"size"`
	SHA256 string    `json:"sha256"`
	Mtime  time.Time `json:"mtime"`
}

func (m *Replication) handleList(w http.ResponseWriter, r *http.Request) error {
	if !m.track() {
		return ErrShuttingDown
	}
	defer m.untrack()
	prefix := r.URL.Query().Get("prefix")
	if !validPrefix(prefix) {
		return ErrInvalidParameter.WithMessage("invalid prefix %q", prefix)
	}
	entries, err := m.store.list(prefix)
	if err != nil {
		return err
	}
	out := make([]fileJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, fileJSON{Path: e.Path, Size: e.Size, SHA256: hexSum(e.Sum), Mtime: time.Unix(0, e.Mtime).UTC()})
	}
	httpjson.WriteJSON(w, http.StatusOK, map[string]any{"files": out})
	return nil
}

func hexSum(s [32]byte) string { return hex.EncodeToString(s[:]) }
