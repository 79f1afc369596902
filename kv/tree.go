package kv

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
)

// The digest is a fixed-shape Merkle tree over the keyspace: a root, then
// treeDepth levels of fanout 16, whose last level has numLeaves leaves.
// Every key belongs to one leaf (by a hash of the key), and the hash of a
// tree node is the XOR of the hashes of every entry (key, version,
// tombstone flag) below it. XOR makes an update O(depth): a changed entry
// toggles its old and new hash into each of its ancestors. Two nodes whose
// roots match hold the same versions of the same keys (up to 64-bit hash
// collisions); where they differ, comparing children level by level finds
// the differing leaves while sending only their hashes.
const (
	treeFanout = 16
	treeDepth  = 3
	numLeaves  = treeFanout * treeFanout * treeFanout // 4096
)

// levelSize is the number of nodes at level (0 is the root).
func levelSize(level int) int {
	n := 1
	for range level {
		n *= treeFanout
	}
	return n
}

// tree holds the hashes of every level. It is not safe for concurrent use:
// the store guards it.
type tree struct {
	levels [treeDepth + 1][]uint64
}

func newTree() *tree {
	t := &tree{}
	for l := range t.levels {
		t.levels[l] = make([]uint64, levelSize(l))
	}
	return t
}

// toggle XORs h into leaf and all its ancestors: adding an entry's hash
// and removing it are the same operation.
func (t *tree) toggle(leaf int, h uint64) {
	idx := leaf
	for l := treeDepth; l >= 0; l-- {
		t.levels[l][idx] ^= h
		idx /= treeFanout
	}
}

// root is the hash of the whole keyspace.
func (t *tree) root() uint64 { return t.levels[0][0] }

// hash is the hash of node index at level.
func (t *tree) hash(level int, index int) uint64 { return t.levels[level][index] }

// nodes returns the hashes of the given nodes of level.
func (t *tree) nodes(level int, indexes []int) []treeNode {
	out := make([]treeNode, len(indexes))
	for i, idx := range indexes {
		out[i] = treeNode{Index: uint32(idx), Hash: t.levels[level][idx]}
	}
	return out
}

// children returns the indexes, one level down, of the children of the
// given nodes.
func children(indexes []int) []int {
	out := make([]int, 0, len(indexes)*treeFanout)
	for _, idx := range indexes {
		for c := range treeFanout {
			out = append(out, idx*treeFanout+c)
		}
	}
	return out
}

// leafOf is the leaf a key belongs to: the top bits of a well-mixed
// 64-bit hash of the key, the same on every node.
func leafOf(key string) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return int(mix64(h.Sum64()) >> (64 - 12))
}

// mix64 is SplitMix64's finalizer: FNV's high bits are weak for short,
// similar keys.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// entryHash is the hash an entry contributes to the tree: it covers the
// key, the whole version and the tombstone flag, but not the value, which
// a version determines (one node never writes two values with one
// version).
func entryHash(key string, v Version, deleted bool) uint64 {
	h := sha256.New()
	var buf [8 + 4 + 1]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(v.Time))
	binary.LittleEndian.PutUint32(buf[8:], v.Counter)
	buf[12] = boolFlag(deleted)
	writeLen := func(s string) {
		var n [binary.MaxVarintLen64]byte
		_, _ = h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		_, _ = h.Write([]byte(s))
	}
	writeLen(key)
	writeLen(v.Node)
	_, _ = h.Write(buf[:])
	var sum [sha256.Size]byte
	return binary.LittleEndian.Uint64(h.Sum(sum[:0]))
}
