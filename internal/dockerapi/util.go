package dockerapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ferryvm/ferry/internal/api/types"
)

func sprintf(format string, a ...any) string {
	if len(a) == 0 {
		return format
	}
	return fmt.Sprintf(format, a...)
}

func sortStrings(s []string) { slices.Sort(s) }

func sortServices(s []types.Service) {
	slices.SortFunc(s, func(a, b types.Service) int {
		if a.InternalPort != b.InternalPort {
			return a.InternalPort - b.InternalPort
		}
		return strings.Compare(a.Protocol, b.Protocol)
	})
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func atoiNonNeg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n < 0 {
		err = fmt.Errorf("negative")
	}
	return n, err
}

func sortEvents(es []types.Event) {
	slices.SortStableFunc(es, func(a, b types.Event) int { return a.Time.Compare(b.Time) })
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

func cutEq(s string) (string, string, bool) { return strings.Cut(s, "=") }
