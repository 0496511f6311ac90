package luks2

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Metadata is the part of the JSON area this package uses.
type Metadata struct {
	Keyslots map[string]Keyslot `json:"keyslots"`
	Segments map[string]Segment `json:"segments"`
	Digests  map[string]Digest  `json:"digests"`
	Config   struct {
		JSONSize     Uint64   `json:"json_size"`
		KeyslotsSize Uint64   `json:"keyslots_size"`
		Flags        []string `json:"flags,omitempty"`
		Requirements *struct {
			Mandatory []string `json:"mandatory,omitempty"`
		} `json:"requirements,omitempty"`
	} `json:"config"`
}

// Keyslot is one luks2 keyslot.
type Keyslot struct {
	Type     string `json:"type"`
	KeySize  int    `json:"key_size"`
	Priority *int   `json:"priority,omitempty"`
	AF       struct {
		Type    string `json:"type"`
		Stripes int    `json:"stripes"`
		Hash    string `json:"hash"`
	} `json:"af"`
	Area struct {
		Type       string `json:"type"`
		Offset     Uint64 `json:"offset"`
		Size       Uint64 `json:"size"`
		Encryption string `json:"encryption"`
		KeySize    int    `json:"key_size"`
	} `json:"area"`
	KDF KDF `json:"kdf"`
}

// KDF is a keyslot's key derivation.
type KDF struct {
	Type       string `json:"type"` // pbkdf2, argon2i, argon2id
	Hash       string `json:"hash,omitempty"`
	Iterations int    `json:"iterations,omitempty"`
	Time       int    `json:"time,omitempty"`
	Memory     int    `json:"memory,omitempty"` // KiB
	CPUs       int    `json:"cpus,omitempty"`
	Salt       []byte `json:"salt"` // base64 in the JSON
}

// Segment is the encrypted data area.
type Segment struct {
	Type       string   `json:"type"`
	Offset     Uint64   `json:"offset"` // bytes from the device start
	Size       string   `json:"size"`   // bytes, or "dynamic": to the end of the device
	IVTweak    Uint64   `json:"iv_tweak"`
	Encryption string   `json:"encryption"`
	SectorSize int      `json:"sector_size"`
	Integrity  any      `json:"integrity,omitempty"`
	Flags      []string `json:"flags,omitempty"`
}

// Digest verifies a volume key.
type Digest struct {
	Type       string   `json:"type"`
	Keyslots   []string `json:"keyslots"`
	Segments   []string `json:"segments"`
	Hash       string   `json:"hash"`
	Iterations int      `json:"iterations"`
	Salt       []byte   `json:"salt"`
	Digest     []byte   `json:"digest"`
}

// Uint64 is a JSON string holding a decimal number (LUKS2 writes offsets
// and sizes that way: JSON numbers lose precision above 2^53).
type Uint64 uint64

// UnmarshalJSON takes "123".
func (u *Uint64) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a number in a string: %w", err)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return err
	}
	*u = Uint64(v)
	return nil
}

func parseMetadata(js []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("JSON area: %w: %w", err, ErrCorrupt)
	}
	if r := m.Config.Requirements; r != nil && len(r.Mandatory) > 0 {
		return nil, fmt.Errorf("mandatory requirements %v (an unfinished reencryption?): %w", r.Mandatory, ErrUnsupported)
	}
	return &m, nil
}

// DataSegment returns the one crypt segment.
func (m *Metadata) DataSegment() (id string, s Segment, err error) {
	if len(m.Segments) != 1 {
		return "", s, fmt.Errorf("%d segments (want one): %w", len(m.Segments), ErrUnsupported)
	}
	for id, s = range m.Segments {
	}
	if s.Type != "crypt" {
		return "", s, fmt.Errorf("segment type %q: %w", s.Type, ErrUnsupported)
	}
	if s.Integrity != nil {
		return "", s, fmt.Errorf("segment with integrity protection: %w", ErrUnsupported)
	}
	if s.SectorSize == 0 {
		s.SectorSize = 512
	}
	if s.SectorSize < 512 || s.SectorSize > 4096 || s.SectorSize&(s.SectorSize-1) != 0 {
		return "", s, fmt.Errorf("segment sector size %d: %w", s.SectorSize, ErrCorrupt)
	}
	if s.Size != "dynamic" {
		if _, perr := strconv.ParseUint(s.Size, 10, 64); perr != nil {
			return "", s, fmt.Errorf("segment size %q: %w", s.Size, ErrCorrupt)
		}
	}
	return id, s, nil
}

// keyslotOrder lists keyslot ids by priority (high 2, normal 1; 0 is
// "ignore" and skipped), then by number, as cryptsetup tries them.
func (m *Metadata) keyslotOrder() []string {
	var ids []string
	prio := func(id string) int {
		if p := m.Keyslots[id].Priority; p != nil {
			return *p
		}
		return 1
	}
	for id := range m.Keyslots {
		if prio(id) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		if pi, pj := prio(ids[i]), prio(ids[j]); pi != pj {
			return pi > pj
		}
		a, _ := strconv.Atoi(ids[i])
		b, _ := strconv.Atoi(ids[j])
		return a < b
	})
	return ids
}
