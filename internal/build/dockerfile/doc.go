// Package dockerfile turns a Dockerfile into what ferry's builder executes,
// with BuildKit's own parser, instruction decoder and shell-word expander
// (github.com/moby/buildkit/frontend/dockerfile/{parser,instructions,shell}),
// so that syntax, heredocs, flags and error messages are BuildKit's.
//
// It works in two phases, both pure:
//
//   - Parse reads the file, evaluates the ARGs before the first FROM with
//     the build arguments, expands every FROM, picks the target stage and
//     keeps only the stages it needs (FROM <stage>, COPY --from,
//     RUN --mount=from=), in an order where each stage follows the stages
//     it reads.
//   - Stage.Dispatch walks one stage's instructions on top of its base
//     image's config (Env, User, WorkingDir, Shell, OnBuild...), expanding
//     each word the way BuildKit does, and returns its Steps: RUN, COPY and
//     ADD steps (which make layers) and metadata steps (which only change
//     the config), each carrying the config after it and the history line
//     it records.
//
// The package neither reads the build context nor runs anything: that is
// internal/build's job.
package dockerfile
