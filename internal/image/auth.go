package image

import "context"

// Login checks username/password against server (a registry host, or ""
// for Docker Hub) and stores them in the Docker config file
// (DOCKER_CONFIG or ~/.docker/config.json) exactly as `docker login` does:
// auths[server].auth = base64(user:password), other keys preserved.
func Login(ctx context.Context, server, username, password string, opts ...Option) error {
	return errNotImplemented
}

// Logout removes server's credentials from the Docker config file.
func Logout(server string) error {
	return errNotImplemented
}
