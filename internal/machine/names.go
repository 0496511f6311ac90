package machine

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"strings"
)

// newID returns a 14-hex-digit machine ID (Fly's shape).
func newID() string {
	var b [7]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ValidID reports whether s has the shape of a machine ID (newID's).
func ValidID(s string) bool {
	if len(s) != 14 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

var (
	adjectives = []string{"amber", "bold", "brave", "calm", "clever", "cool", "crisp", "dark", "eager", "fancy", "gentle", "happy", "keen", "lively", "lucky", "mellow", "misty", "noble", "quiet", "rapid", "royal", "shy", "silent", "solid", "swift", "tidy", "vivid", "wild", "wise", "young"}
	nouns      = []string{"bird", "brook", "cloud", "cove", "dawn", "dust", "field", "fire", "fog", "forest", "frost", "glade", "haze", "hill", "lake", "leaf", "moon", "night", "pine", "pond", "rain", "reef", "river", "sea", "shore", "sky", "snow", "star", "sun", "wave"}
)

// randomName returns a Docker-style name such as "calm-river-4821".
func randomName() string {
	pick := func(s []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(s))))
		return s[n.Int64()]
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(10000))
	return pick(adjectives) + "-" + pick(nouns) + "-" + n.String()
}
