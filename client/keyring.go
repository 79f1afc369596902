package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// KeyInfo is one installed cluster secret, named by its ID (the secret
// itself is never shown).
type KeyInfo struct {
	ID      string `json:"id"`
	Primary bool   `json:"primary"`
}

// NodeKeys is one member's answer to a keyring operation.
type NodeKeys struct {
	Keys  []KeyInfo `json:"keys,omitempty"`
	Error string    `json:"error,omitempty"`
}

// Keyring is every alive member's answer to a keyring operation.
type Keyring struct {
	Nodes  map[string]NodeKeys `json:"nodes"`
	Failed int                 `json:"failed"`
}

// ErrKeyringPartial is matched by the error of a keyring operation that
// some members failed; the *KeyringError carries every answer.
var ErrKeyringPartial = errors.New("the keyring operation failed on some members")

// KeyringError is a keyring operation some members failed.
type KeyringError struct {
	Result Keyring
}

func (e *KeyringError) Error() string {
	return fmt.Sprintf("the keyring operation failed on %d of %d members", e.Result.Failed, len(e.Result.Nodes))
}

// Is makes errors.Is(err, ErrKeyringPartial) hold.
func (e *KeyringError) Is(target error) bool { return target == ErrKeyringPartial }

// Keyring lists the cluster keys of every alive member.
func (c *Client) Keyring(ctx context.Context) (Keyring, error) {
	var out Keyring
	_, err := c.do(ctx, http.MethodGet, "/v1/keyring", nil, nil, &out)
	return out, keyringErr(err, out)
}

// KeyringInstall installs a cluster secret on every alive member.
func (c *Client) KeyringInstall(ctx context.Context, secret string) (Keyring, error) {
	return c.keyringChange(ctx, "install", secret)
}

// KeyringUse makes an installed key (the secret, or its ID) primary on
// every alive member.
func (c *Client) KeyringUse(ctx context.Context, key string) (Keyring, error) {
	return c.keyringChange(ctx, "use", key)
}

// KeyringRemove removes a key (the secret, or its ID) from every alive
// member.
func (c *Client) KeyringRemove(ctx context.Context, key string) (Keyring, error) {
	return c.keyringChange(ctx, "remove", key)
}

func (c *Client) keyringChange(ctx context.Context, op, key string) (Keyring, error) {
	var out Keyring
	_, err := c.do(ctx, http.MethodPost, "/v1/keyring/"+op, nil, map[string]string{"key": key}, &out)
	return out, keyringErr(err, out)
}

// keyringErr turns a 502 keyring_partial into a *KeyringError with every
// member's answer.
func keyringErr(err error, _ Keyring) error {
	var e *Error
	if !errors.As(err, &e) || e.Code != "keyring_partial" {
		return err
	}
	var res Keyring
	if raw, ok := e.Details["result"]; ok {
		// The details arrive as generic JSON values: re-encode them into
		// the typed result.
		if b, mErr := json.Marshal(raw); mErr == nil {
			_ = json.Unmarshal(b, &res)
		}
	}
	return &KeyringError{Result: res}
}
