package guest

// Argv returns the command the entrypoint runs, as Docker computes it:
//
//   - Override.Exec, when set, is the whole argv;
//   - Override.Entrypoint (even empty) replaces the image Entrypoint and drops
//     the image Cmd;
//   - Override.Cmd replaces the Cmd;
//   - the result is Entrypoint followed by Cmd.
func (c *RunConfig) Argv() []string {
	if len(c.Override.Exec) > 0 {
		return c.Override.Exec
	}
	ep, cmd := c.Image.Entrypoint, c.Image.Cmd
	if c.Override.Entrypoint != nil {
		ep, cmd = *c.Override.Entrypoint, nil
	}
	if c.Override.Cmd != nil {
		cmd = *c.Override.Cmd
	}
	argv := make([]string, 0, len(ep)+len(cmd))
	return append(append(argv, ep...), cmd...)
}

// User returns the user spec the entrypoint runs as (override, else image).
func (c *RunConfig) User() string {
	if c.Override.User != "" {
		return c.Override.User
	}
	return c.Image.User
}

// WorkingDir returns the entrypoint's working directory (override, else
// image, else "/").
func (c *RunConfig) WorkingDir() string {
	switch {
	case c.Override.WorkingDir != "":
		return c.Override.WorkingDir
	case c.Image.WorkingDir != "":
		return c.Image.WorkingDir
	}
	return "/"
}
