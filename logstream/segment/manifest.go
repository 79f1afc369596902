package segment

import (
	"fmt"

	"shoal/internal/wire"
)

// A manifest is encoded in the primitives of internal/wire, every integer
// a minimal unsigned varint:
//
//	first next applied count  count × ( base next size )
//
// Segment names are not encoded: a segment's name is derived from its
// base, so a manifest cannot name a file outside the store's directory.

// AppendManifest appends m's encoding to b.
func AppendManifest(b []byte, m Manifest) []byte {
	b = wire.AppendUvarint(b, m.First)
	b = wire.AppendUvarint(b, m.Next)
	b = wire.AppendUvarint(b, m.Applied)
	b = wire.AppendUvarint(b, uint64(len(m.Segments)))
	for _, ref := range m.Segments {
		b = wire.AppendUvarint(b, ref.Base)
		b = wire.AppendUvarint(b, ref.Next)
		b = wire.AppendUvarint(b, uint64(ref.Size))
	}
	return b
}

// DecodeManifest decodes a manifest AppendManifest wrote and checks it
// with Validate. It never panics, and it allocates in proportion to b.
func DecodeManifest(b []byte) (Manifest, error) {
	d := wire.NewDecoder(b)
	var m Manifest
	m.First = d.Uvarint("first")
	m.Next = d.Uvarint("next")
	m.Applied = d.Uvarint("applied")
	count := d.Count("segment count", 3)
	if count > 0 {
		m.Segments = make([]SegmentRef, 0, count)
	}
	for range count {
		ref := SegmentRef{Base: d.Uvarint("segment base"), Next: d.Uvarint("segment next")}
		size := d.Uvarint("segment size")
		if d.Err() == nil && size > maxSegmentBytes+maxBatchBytes+maxBodyLen {
			d.Failf("segment size", "%d bytes", size)
		}
		ref.Size, ref.Name = int64(size), segName(ref.Base)
		m.Segments = append(m.Segments, ref)
	}
	if err := d.End(); err != nil {
		return Manifest{}, fmt.Errorf("decode log segment manifest: %w: %w", ErrCorrupt, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Validate reports whether m can describe a store: at least one segment,
// each named by its base and at least a header long, each starting where
// the previous one ends, the last ending at Next, and First within the
// segments (or at Next).
func (m Manifest) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("log segment manifest: "+format+": %w", append(args, ErrCorrupt)...)
	}
	n := len(m.Segments)
	switch {
	case n == 0:
		return bad("no segments")
	case m.First == 0 || m.First > m.Next:
		return bad("first %d, next %d", m.First, m.Next)
	case m.First < m.Segments[0].Base:
		return bad("first %d below the first segment's base %d", m.First, m.Segments[0].Base)
	case m.Segments[n-1].Next != m.Next:
		return bad("the last segment ends at %d, not at next %d", m.Segments[n-1].Next, m.Next)
	}
	for i, ref := range m.Segments {
		switch {
		case ref.Base == 0 || ref.Next < ref.Base || ref.Size < headerSize:
			return bad("segment %d with base %d, next %d and %d bytes", i, ref.Base, ref.Next, ref.Size)
		case ref.Name != segName(ref.Base):
			return bad("segment %d named %q with base %d", i, ref.Name, ref.Base)
		case i > 0 && m.Segments[i-1].Next != ref.Base:
			return bad("segment %d starts at %d, the previous ends at %d", i, ref.Base, m.Segments[i-1].Next)
		}
	}
	return nil
}
