package modules

import (
	"errors"
	"testing"
)

// limitConfig is a Config whose limit must be positive.
type limitConfig struct{ limit int }

var errBadLimit = errors.New("limit must be positive")

func (c limitConfig) Validate() error {
	if c.limit <= 0 {
		return errBadLimit
	}
	return nil
}

// otherConfig is a Config of another module.
type otherConfig struct{}

func (otherConfig) Validate() error { return nil }

func TestConfigAs(t *testing.T) {
	errInvalid := errors.New("invalid test configuration")
	def := limitConfig{limit: 1}
	tests := []struct {
		name    string
		cfg     Config
		want    limitConfig
		wantErr error
	}{
		{"none gives the default", nil, def, nil},
		{"a value", limitConfig{limit: 5}, limitConfig{limit: 5}, nil},
		{"a pointer", &limitConfig{limit: 7}, limitConfig{limit: 7}, nil},
		{"a nil pointer gives the default", (*limitConfig)(nil), def, nil},
		{"invalid", limitConfig{limit: 0}, limitConfig{}, errBadLimit},
		{"another module's", otherConfig{}, limitConfig{}, errInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigAs(tt.cfg, def, errInvalid)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
