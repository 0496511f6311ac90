// Package compose runs multi-service applications described by a
// compose.yaml as ferry machines, one micro-VM per service replica.
//
// Load parses a project with compose-go (file discovery, .env,
// COMPOSE_FILE, COMPOSE_PROJECT_NAME, interpolation, extends, include,
// profiles, several -f files merged) exactly as docker compose does. NewPlan
// turns it into what the daemon is asked for: per service the machine
// create requests of its replicas (PROJECT-SERVICE-N), labelled with the
// project, service, replica number and a hash of the service's
// configuration, its image build (Build, for ferry's builder; the image
// PROJECT-SERVICE unless image: names it), and the project's networks. Up
// and Down converge the daemon to a plan through ferry's typed API client:
// independent services start in parallel, a service waits only for what
// its depends_on names (started, healthy, completed successfully; required
// and restart honoured), a replica counts as started once its init takes
// exec requests, and a second Up recreates only services whose hash
// changed. PrepareRun makes the one-off machine of compose run.
package compose
