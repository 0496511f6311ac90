package auth

import (
	"fmt"
	"strings"
)

// Challenge formats a WWW-Authenticate header value asking for a bearer
// token from realm for service, with the scopes the request needs.
// errCode is "" or a token-spec error such as "insufficient_scope".
func Challenge(realm, service string, scopes []string, errCode string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q,service=%q", realm, service)
	if len(scopes) > 0 {
		fmt.Fprintf(&b, ",scope=%q", strings.Join(scopes, " "))
	}
	if errCode != "" {
		fmt.Fprintf(&b, ",error=%q", errCode)
	}
	return b.String()
}
