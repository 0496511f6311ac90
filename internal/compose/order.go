package compose

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferryvm/ferry/internal/errdefs"
)

// Order is the plan's services with every service after what it depends
// on, or an error naming a dependency cycle.
func (p *Plan) Order() ([]string, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var out, stack []string
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case done:
			return nil
		case visiting:
			i := slices.Index(stack, n)
			return fmt.Errorf("depends_on: dependency cycle %s -> %s: %w", strings.Join(stack[i:], " -> "), n, errdefs.ErrInvalidArgument)
		}
		state[n] = visiting
		stack = append(stack, n)
		for _, d := range slices.Sorted(mapKeys(p.Services[n].DependsOn)) {
			if _, ok := p.Services[d]; !ok {
				continue // optional and absent (not required)
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = done
		out = append(out, n)
		return nil
	}
	for _, n := range slices.Sorted(mapKeys(p.Services)) {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}
