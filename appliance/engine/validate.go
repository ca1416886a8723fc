package engine

// Validate checks c as New does and returns it with every default filled
// in: how a configuration is checked, or its defaults shown, without
// building an engine.
func (c Config) Validate() (Config, error) { return c.withDefaults() }
