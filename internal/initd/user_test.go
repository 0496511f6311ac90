package initd

import (
	"errors"
	"reflect"
	"testing"

	"github.com/ferryvm/ferry/internal/guest"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000:app:/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\nbroken line\n"
	testGroup  = "root:x:0:\napp:x:1000:\nextra:x:2000:app,web\nstaff:x:50:web\n"
)

func TestResolveUser(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Cred
	}{
		{"", Cred{Name: "root", UID: 0, GID: 0, Home: "/root"}},
		{"root", Cred{Name: "root", Home: "/root"}},
		{"app", Cred{Name: "app", UID: 1000, GID: 1000, Groups: []uint32{2000}, Home: "/home/app"}},
		{"1000", Cred{Name: "app", UID: 1000, GID: 1000, Groups: []uint32{2000}, Home: "/home/app"}},
		{"4242", Cred{UID: 4242, Home: "/"}},
		{"4242:99", Cred{UID: 4242, GID: 99, Home: "/"}},
		{"web:extra", Cred{Name: "web", UID: 33, GID: 2000, Groups: []uint32{50}, Home: "/var/www"}},
		{"app:50", Cred{Name: "app", UID: 1000, GID: 50, Groups: []uint32{2000}, Home: "/home/app"}},
	} {
		got, err := ResolveUser(tc.spec, []byte(testPasswd), []byte(testGroup))
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestResolveUserUnknown(t *testing.T) {
	for _, spec := range []string{"ghost", "app:ghosts", "ghost:0"} {
		_, err := ResolveUser(spec, []byte(testPasswd), []byte(testGroup))
		var f *guest.Failure
		if !errors.As(err, &f) || f.Reason != guest.ReasonUser {
			t.Errorf("%q: err %v, want a %s failure", spec, err, guest.ReasonUser)
		}
	}
	// No /etc/passwd at all: numeric users still work (scratch images).
	if c, err := ResolveUser("1:2", nil, nil); err != nil || c.UID != 1 || c.GID != 2 {
		t.Errorf("numeric without passwd: %+v %v", c, err)
	}
}

func TestBuildEnv(t *testing.T) {
	got := BuildEnv([]string{"A=1", "PATH=/x", "B=2"}, []string{"B=3", "C=4"}, "/home/app", "vm", true)
	want := []string{"A=1", "PATH=/x", "B=3", "C=4", "HOSTNAME=vm", "HOME=/home/app", "TERM=xterm"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	got = BuildEnv(nil, []string{"HOME=/h"}, "/root", "", false)
	want = []string{"HOME=/h", "PATH=" + DefaultPath}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
