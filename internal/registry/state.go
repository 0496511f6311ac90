package registry

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// uploadState mirrors distribution's blobUploadState: the "_state" query
// parameter of an upload URL is base64url(HMAC-SHA256(secret, json) ||
// json). The middleware shares the secret with the embedded app, so it can
// open the state, swap the repository name between the client's view and
// storage's, and seal it again.
type uploadState struct {
	Name      string
	UUID      string
	Offset    int64
	StartedAt time.Time
}

var errBadState = errors.New("invalid upload state")

type stateKey []byte

func (k stateKey) unpack(token string) (uploadState, error) {
	var st uploadState
	raw, err := base64.URLEncoding.DecodeString(token)
	if err != nil {
		return st, errBadState
	}
	mac := hmac.New(sha256.New, k)
	if len(raw) < mac.Size() {
		return st, errBadState
	}
	sum, msg := raw[:mac.Size()], raw[mac.Size():]
	mac.Write(msg)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return st, errBadState
	}
	if err := json.Unmarshal(msg, &st); err != nil {
		return st, errBadState
	}
	return st, nil
}

func (k stateKey) pack(st uploadState) string {
	msg, _ := json.Marshal(st) // plain struct: cannot fail
	mac := hmac.New(sha256.New, k)
	mac.Write(msg)
	return base64.URLEncoding.EncodeToString(append(mac.Sum(nil), msg...))
}
