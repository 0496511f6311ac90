package compose

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	ctypes "github.com/compose-spec/compose-go/v2/types"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Options choose and load a project (docker compose's global flags).
type Options struct {
	Files       []string // -f; none: COMPOSE_FILE, else compose.yaml & co. found upwards
	ProjectName string   // -p; "": COMPOSE_PROJECT_NAME, the file's name:, the directory
	Profiles    []string // --profile; none: COMPOSE_PROFILES
	EnvFiles    []string // --env-file; none: .env in the project directory
	WorkingDir  string   // --project-directory
}

// Load reads and validates the project o selects. Its errors are
// compose-go's, naming the file (and line where it has one).
func Load(ctx context.Context, o Options) (*ctypes.Project, error) {
	fns := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(o.WorkingDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(o.EnvFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithDefaultProfiles(o.Profiles...),
		cli.WithResolvedPaths(true),
	}
	if len(o.Profiles) > 0 {
		fns = append(fns, cli.WithProfiles(o.Profiles))
	}
	if o.ProjectName != "" {
		fns = append(fns, cli.WithName(o.ProjectName))
	}
	po, err := cli.NewProjectOptions(o.Files, fns...)
	if err != nil {
		return nil, fmt.Errorf("compose: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	p, err := po.LoadProject(ctx)
	if err != nil {
		msg := err.Error()
		if files := strings.Join(po.ConfigPaths, ", "); files != "" && !mentionsFile(msg, po.ConfigPaths) {
			msg = files + ": " + msg // a YAML error names only the line
		}
		return nil, fmt.Errorf("compose: %s: %w", msg, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

func mentionsFile(msg string, files []string) bool {
	for _, f := range files {
		if strings.Contains(msg, f) || strings.Contains(msg, filepath.Base(f)) {
			return true
		}
	}
	return false
}
