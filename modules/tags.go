package modules

// Tag is the first byte of every Raft command and gossip message a module
// sends: the FSM and the gossip layer dispatch on it, as Consul's FSM does on
// its message type. A tag is part of the on-disk and on-wire format: once
// released, a number is never changed or reused, even when its module is
// removed.
type Tag byte

// The tags of shoal's modules. Zero is the core's own (consensus commits a
// marker command under it when a leader starts its term); a module that uses
// neither Raft nor gossip reports TagNone.
const (
	TagNone        Tag = 0
	TagLog         Tag = 1
	TagKV          Tag = 2
	TagLocks       Tag = 3
	TagObjectSync  Tag = 4
	TagReplication Tag = 5
	TagACL         Tag = 6

	// TagTest is for modules that tests register; no shipped module uses it.
	TagTest Tag = 255
)
