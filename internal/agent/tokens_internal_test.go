package agent

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"shoal/acl"
)

// TestRemoteTokens_CacheIsBounded: once the cache holds maxCachedTokens
// answers, a secret nobody knows is no longer kept (a caller trying
// random secrets cannot grow it), while a token a server named still is.
func TestRemoteTokens_CacheIsBounded(t *testing.T) {
	r := &remoteTokens{ttl: tokenTTL, cache: map[[sha256.Size]byte]cachedToken{}}
	now := time.Now()
	for i := range maxCachedTokens + 10 {
		r.remember(sha256.Sum256(fmt.Appendf(nil, "random-%d", i)), cachedToken{at: now})
	}
	if len(r.cache) != maxCachedTokens {
		t.Fatalf("unknown secrets cached: %d, want the bound %d", len(r.cache), maxCachedTokens)
	}
	h := sha256.Sum256([]byte("a real secret"))
	r.remember(h, cachedToken{secret: "a real secret", known: true, at: now, tok: acl.Token{AccessorID: "a"}})
	if c, ok := r.cache[h]; !ok || !c.known {
		t.Fatal("a known token was not cached when the cache was full of unknown secrets")
	}
}
