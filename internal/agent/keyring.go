package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"shoal/internal/httpjson"
	"shoal/internal/keyring"
	"shoal/internal/peerrpc"
	"shoal/membership"
)

// Keyring operations run on every alive member, as Serf's and Consul's do:
// the node that gets the request calls each member over the cluster port
// (the secret travels under mutual TLS) and reports each answer.
const (
	methodKeyringList    = "keyring.list"
	methodKeyringInstall = "keyring.install"
	methodKeyringUse     = "keyring.use"
	methodKeyringRemove  = "keyring.remove"
)

// KeyringOps are the operations of the cluster-wide keyring.
var KeyringOps = map[string]string{
	"list":    methodKeyringList,
	"install": methodKeyringInstall,
	"use":     methodKeyringUse,
	"remove":  methodKeyringRemove,
}

var (
	errNoKeyring = httpjson.Errorf(http.StatusConflict, "no_keyring",
		"this node runs without a cluster secret: start every node with --cluster-secret to use a keyring")
	errKeyNotFound = httpjson.Errorf(http.StatusNotFound, "key_not_found", "no such key in the keyring")
	errPrimaryKey  = httpjson.Errorf(http.StatusConflict, "primary_key", "the primary key cannot be removed: make another key primary first")
	errBadSecret   = httpjson.BadRequest("bad_secret", "the key is not a cluster secret")
)

// serveKeyring registers the keyring calls this node answers.
func (a *Agent) serveKeyring(s *peerrpc.Server) {
	for _, method := range KeyringOps {
		s.Handle(method, func(ctx context.Context, from string, body []byte) ([]byte, error) {
			keys, err := a.keyringLocal(method, string(body))
			if err != nil {
				return nil, err
			}
			return json.Marshal(keys)
		})
	}
}

// keyringLocal runs one keyring operation on this node.
func (a *Agent) keyringLocal(method, key string) ([]keyring.KeyInfo, error) {
	if a.ring == nil {
		return nil, errNoKeyring
	}
	var err error
	switch method {
	case methodKeyringInstall:
		var s keyring.Secret
		if s, err = keyring.Parse(key); err != nil {
			return nil, errBadSecret.WithMessage("%s", err.Error())
		}
		err = a.ring.Install(s)
	case methodKeyringUse:
		err = a.ring.Use(key)
	case methodKeyringRemove:
		err = a.ring.Remove(key)
	}
	switch {
	case errors.Is(err, keyring.ErrUnknownKey):
		return nil, errKeyNotFound
	case errors.Is(err, keyring.ErrPrimary):
		return nil, errPrimaryKey
	case err != nil:
		return nil, err
	}
	return a.ring.Keys(), nil
}

// KeyringOp runs op ("list", "install", "use" or "remove") with key on
// every alive member, this node included, and collects their answers.
func (a *Agent) KeyringOp(ctx context.Context, op, key string) (keyring.ClusterKeys, error) {
	method, ok := KeyringOps[op]
	if !ok {
		return keyring.ClusterKeys{}, httpjson.BadRequest("bad_operation", "keyring operations are list, install, use and remove")
	}
	if a.ring == nil {
		return keyring.ClusterKeys{}, errNoKeyring
	}
	if op == "install" {
		if _, err := keyring.Parse(key); err != nil {
			return keyring.ClusterKeys{}, errBadSecret.WithMessage("%s", err.Error())
		}
	}
	out := keyring.ClusterKeys{Nodes: map[string]keyring.NodeKeys{}}
	var mu sync.Mutex
	record := func(name string, keys []keyring.KeyInfo, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Nodes[name] = keyring.NodeKeys{Error: httpjson.As(err).Message}
			out.Failed++
			return
		}
		out.Nodes[name] = keyring.NodeKeys{Keys: keys}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range a.members.Members() {
		if m.Status != membership.StatusAlive && m.Status != membership.StatusSuspect {
			continue
		}
		if m.Name == a.cfg.NodeName {
			keys, err := a.keyringLocal(method, key)
			record(m.Name, keys, err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := a.peers.rpc.Call(ctx, m.Name, m.Meta.RaftAddr, method, []byte(key))
			var keys []keyring.KeyInfo
			if err == nil {
				err = json.Unmarshal(body, &keys)
			}
			record(m.Name, keys, err)
		}()
	}
	wg.Wait()
	return out, nil
}
