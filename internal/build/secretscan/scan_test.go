package secretscan

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferryvm/ferry/internal/testimage"
)

func TestScanFindsHiddenSecrets(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	l0, err := testimage.Layer([]testimage.File{
		{Path: "root/.ssh/deploy", Data: []byte(key)},
		{Path: "app/.env", Data: []byte("DB=postgres\n")},
		{Path: "app/config.yml", Data: []byte("api_key: 'Zq8vR2mX9tLp4WnB7cKd1sFh6JyE3gA0'\n")},
		{Path: "app/readme.txt", Data: []byte("password: see the wiki\n")},
		{Path: "etc/ssl/certs/ca.pem", Data: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
		{Path: "home/u/.aws/credentials", Data: []byte("[default]\n")},
		{Path: "visible/.env", Data: []byte("X=1\n")},
	}, testimage.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	l1, _ := testimage.Layer([]testimage.File{
		{Path: "root/.ssh/.wh.deploy"},
		{Path: "app/config.yml", Data: []byte("api_key: ${API_KEY}\n")},
		{Path: "home/u/.wh..wh..opq"},
	}, testimage.Gzip)
	l2, _ := testimage.Layer([]testimage.File{{Path: "app/.wh..wh..opq"}}, testimage.Gzip)
	img, err := testimage.Image(v1.Config{}, v1.Platform{OS: "linux", Architecture: "amd64"}, l0, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Scan(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Path+" "+f.Reason+" "+f.How)
		if f.Layer != 0 || f.LayerDigest.Hex == "" || !strings.Contains(f.String(), "layer 0") {
			t.Errorf("finding %+v", f)
		}
	}
	want := []string{
		"/app/.env environment file deleted",
		"/app/config.yml high-entropy token assigned to api_key overwritten",
		"/home/u/.aws/credentials AWS credentials deleted",
		"/root/.ssh/deploy private key deleted",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
