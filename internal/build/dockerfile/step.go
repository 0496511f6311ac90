package dockerfile

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Kind is what a step does to the image.
type Kind int

// Step kinds. Only Run and Copy make layers.
const (
	Meta Kind = iota // changes the config only
	Run              // RUN: a command in the stage's filesystem
	Copy             // COPY or ADD: files from the context, a stage or an image
)

// Step is one instruction, expanded.
type Step struct {
	Kind Kind
	// Line is the instruction's first line in the Dockerfile (for a
	// trigger, the FROM's line).
	Line int
	// Text is the instruction as written, with variables expanded
	// ("RUN apk add curl"), for progress output.
	Text string
	// History is the created_by line the step records (BuildKit's form).
	History string
	// OnBuild marks a trigger inherited from the base image.
	OnBuild bool

	Run  *RunStep  // Kind Run
	Copy *CopyStep // Kind Copy

	// Config is the image config after this step.
	Config v1.Config
}

// RunStep is a RUN: what to execute and in which environment.
type RunStep struct {
	// Argv is the command; in shell form already wrapped in the shell.
	Argv []string
	// Env is the process environment: the image's Env with the ARGs in
	// scope (which the image does not keep) and proxy build args.
	Env     []string
	User    string // "" is root
	Workdir string // absolute; "/" when unset
	Mounts  []Mount
	// Network is "default", "none" or "host" (RUN --network).
	Network string
	// Files are heredoc scripts the command runs from, mounted read-only
	// at /dev/pipes/<Name> (a heredoc with a shebang line).
	Files []InlineFile
}

// InlineFile is a heredoc's content.
type InlineFile struct {
	Name string
	Data string
}

// Mount is a RUN --mount.
type Mount struct {
	Type   string // bind, cache, tmpfs, secret, ssh
	Target string // absolute
	// From is a stage name or index, or an image reference (bind, cache);
	// FromStage is set when it names a stage of the plan.
	From      string
	FromStage *Stage
	Source    string
	ReadOnly  bool
	// CacheID is the cache's identity (default: the target).
	CacheID string
	Sharing string // shared, private, locked
	// SecretID names a --secret of the build (default: the target's base name).
	SecretID  string
	Env       string // secret: also (or only) expose it as this variable
	Required  bool
	SizeLimit int64
	Mode      *uint64
	UID       *uint64
	GID       *uint64
}

// CopyStep is a COPY or ADD.
type CopyStep struct {
	Add bool
	// Sources are paths in the source (context, stage or image), expanded.
	Sources []string
	// Inline are heredoc sources (COPY <<EOF /dest), written as files named
	// Name.
	Inline []InlineFile
	// Dest is absolute; a trailing "/" means a directory.
	Dest string
	// From is "" (the build context), or a stage name/index (FromStage set)
	// or an image reference.
	From      string
	FromStage *Stage
	Chown     string
	Chmod     string
	Link      bool
	Parents   bool
	Exclude   []string
	// Unpack is ADD's archive extraction (default on for ADD, off for COPY).
	Unpack bool
}
