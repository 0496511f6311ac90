package initd

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/guest"
)

// Cred is who a process runs as.
type Cred struct {
	Name   string // empty for a uid not in /etc/passwd
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
	Home   string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// ResolveUser resolves a Docker user spec (name, uid, uid:gid, name:group,
// empty for root) against the image's /etc/passwd and /etc/group contents
// (either may be nil). Like Docker: a numeric uid need not exist (HOME is
// then "/"); a name must; supplementary groups are the groups that list the
// user's name.
func ResolveUser(spec string, passwd, group []byte) (Cred, error) {
	users, groups := parsePasswd(passwd), parseGroup(group)
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" {
		userPart = "0"
	}
	unknown := func(format string, a ...any) error {
		return &guest.Failure{Reason: guest.ReasonUser, Message: fmt.Sprintf(format, a...)}
	}
	var c Cred
	if uid, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		c = Cred{UID: uint32(uid), Home: "/"}
		for _, u := range users {
			if u.uid == c.UID {
				c.Name, c.GID, c.Home = u.name, u.gid, u.home
				break
			}
		}
	} else {
		found := false
		for _, u := range users {
			if u.name == userPart {
				c = Cred{Name: u.name, UID: u.uid, GID: u.gid, Home: u.home}
				found = true
				break
			}
		}
		if !found {
			return Cred{}, unknown("user %q not found in /etc/passwd", userPart)
		}
	}
	if c.UID == 0 && c.Name == "" && c.Home == "/" {
		c.Home = "/root"
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			c.GID = uint32(gid)
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					c.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return Cred{}, unknown("group %q not found in /etc/group", groupPart)
			}
		}
	}
	if c.Name != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == c.Name && g.gid != c.GID {
					c.Groups = append(c.Groups, g.gid)
				}
			}
		}
	}
	if c.Home == "" {
		c.Home = "/"
	}
	return c, nil
}

func colonLines(b []byte, minFields int, each func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) >= minFields {
			each(f)
		}
	}
}

func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	colonLines(b, 6, func(f []string) {
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 == nil && err2 == nil {
			out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]})
		}
	})
	return out
}

func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	colonLines(b, 3, func(f []string) {
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out
}
