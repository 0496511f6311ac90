// Package buildctx moves a build context from the client to the builder
// and reads it there, safely and without holding it in memory.
//
// The client side (Send) walks a directory in a fixed order and writes it
// as a tar stream, leaving out what .dockerignore excludes (patterns
// matched by github.com/moby/patternmatcher, as Docker does); symlinks
// travel as links, sockets and devices are left out. The builder side
// (Receive) extracts such a stream into a directory with fd-relative,
// breakout-safe calls: entry names with ".." or a leading "/" are refused,
// no symlink is ever followed while extracting (a tar that puts a file
// "under" a symlink is refused), and .dockerignore is applied again, since
// a context piped in as a tar is not filtered by a client.
//
// Root opens paths of an extracted context (or of any tree the builder
// made) the way COPY needs them: symlinks resolve inside the root, so a
// link pointing at /etc/passwd names <root>/etc/passwd, never the host's.
package buildctx
