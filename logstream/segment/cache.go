package segment

import (
	"container/list"
	"sync"
)

// Cache is a read cache of entries, least recently used first out, bounded
// by the bytes of the entries it holds (data, id and a fixed overhead
// each). It is shared by the Stores of a node and safe for concurrent use;
// its methods never block on I/O.
type Cache struct {
	max int64

	mu    sync.Mutex
	bytes int64
	lru   *list.List // of *cacheItem, most recent at the front
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	s   *Store
	off uint64
}

type cacheItem struct {
	key  cacheKey
	e    Entry
	cost int64
}

// cacheOverhead approximates the memory of one cached entry beside its
// data and id: the list element, the map slot (with the map's spare room)
// and the item. Measured with a heap profile of a node that had cached
// 80,000 entries of 256 bytes: 47 MB in all, about 330 bytes each beside
// the data (an estimate of 160 had let the cache hold 40% more than its
// flag said).
const cacheOverhead = 330

// NewCache returns a cache holding at most maxBytes; 0 or less caches
// nothing.
func NewCache(maxBytes int64) *Cache {
	return &Cache{max: maxBytes, lru: list.New(), items: map[cacheKey]*list.Element{}}
}

func costOf(e Entry) int64 { return int64(len(e.Data)+len(e.ID)) + cacheOverhead }

// put adds e of s. An entry larger than a quarter of the cache is not kept,
// so one large entry cannot flush the cache.
func (c *Cache) put(s *Store, e Entry) {
	if c == nil {
		return
	}
	cost := costOf(e)
	if cost > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{s, e.Offset}
	if el, ok := c.items[k]; ok {
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(&cacheItem{key: k, e: e, cost: cost})
	c.bytes += cost
	for c.bytes > c.max {
		c.remove(c.lru.Back())
	}
}

// get returns the entry at off of s.
func (c *Cache) get(s *Store, off uint64) (Entry, bool) {
	if c == nil {
		return Entry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[cacheKey{s, off}]
	if !ok {
		return Entry{}, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheItem).e, true
}

// purge drops every entry of s (closed or deleted). It walks the whole
// cache, which is bounded.
func (c *Cache) purge(s *Store) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Front(); el != nil; {
		nextEl := el.Next()
		if el.Value.(*cacheItem).key.s == s {
			c.remove(el)
		}
		el = nextEl
	}
}

func (c *Cache) remove(el *list.Element) {
	it := c.lru.Remove(el).(*cacheItem)
	delete(c.items, it.key)
	c.bytes -= it.cost
}

// Bytes returns the bytes the cache holds now.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
