package modules

import "fmt"

// ConfigAs returns a module's configuration as a C, for its Provision to
// read from Host.Config: def when the host holds none (a module
// provisioned on its own, as in unit tests), otherwise the C or *C the
// host holds. The result is validated. A configuration of any other type
// is a bug of the caller; the error wraps invalid, the module's sentinel
// for a bad configuration.
func ConfigAs[C Config](cfg Config, def C, invalid error) (C, error) {
	c := def
	// On any, not Config: the case *C is impossible on Config for the
	// compiler, which does not know that *C has C's methods.
	switch v := any(cfg).(type) {
	case nil:
	case C:
		c = v
	case *C:
		if v != nil {
			c = *v
		}
	default:
		return c, fmt.Errorf("configuration of type %T: %w", cfg, invalid)
	}
	if err := c.Validate(); err != nil {
		return c, err
	}
	return c, nil
}
