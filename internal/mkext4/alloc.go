package mkext4

import (
	"cmp"
	"fmt"
	"slices"
)

// maxExtentLen is the longest initialised extent ext4 can describe.
const maxExtentLen = 32768

// lpfBlocks is the size of lost+found, as mke2fs makes it (16 KiB).
const lpfBlocks = 4

// run is a range of blocks.
type run struct{ start, len uint64 }

// end is the block after the run.
func (r run) end() uint64 { return r.start + r.len }

// plan is the whole filesystem's block allocation: the geometry's
// metadata plus the blocks of the root directory, lost+found and journal.
type plan struct {
	geometry
	root        uint64   // the root directory's one block
	lpf         uint64   // the first of lost+found's lpfBlocks blocks
	journal     []run    // the journal, as extents of at most maxExtentLen
	journalLeaf uint64   // block of the journal's extent leaf; 0: in the inode
	used        []run    // every block in use, sorted and merged
	usedIn      []uint32 // blocks in use in each group
}

// newPlan allocates the directories and a journal of journalBlocks blocks
// (none if 0) first-fit after group 0's inode tables.
func newPlan(g geometry, journalBlocks uint64) (plan, error) {
	p := plan{geometry: g}
	p.used = append(p.used, run{0, 1 + g.gdtBlocks})
	for f := range g.flexes() {
		p.used = append(p.used, run{g.flexMetaStart(f), g.flexMetaLen(f)})
	}
	backups := g.backupRuns()
	p.used = append(p.used, backups...)
	a := allocator{g: &g, next: g.flexMetaStart(0) + g.flexMetaLen(0), skip: backups}
	dirs, err := a.take(1 + lpfBlocks)
	if err == nil && len(dirs) != 1 {
		err = fmt.Errorf("no %d contiguous blocks after group 0's inode tables: %w", 1+lpfBlocks, ErrInvalid)
	}
	if err != nil {
		return p, fmt.Errorf("allocate root directory and lost+found: %w", err)
	}
	p.root, p.lpf = dirs[0].start, dirs[0].start+1
	p.used = append(p.used, dirs...)
	if journalBlocks > 0 {
		if free := g.blocks - sumLen(p.used); journalBlocks > free/2 {
			return p, fmt.Errorf("journal of %d blocks is more than half of the %d free blocks: %w", journalBlocks, free, ErrInvalid)
		}
		if err := p.allocJournal(a, journalBlocks); err != nil {
			return p, fmt.Errorf("allocate journal: %w", err)
		}
	}
	slices.SortFunc(p.used, func(a, b run) int { return cmp.Compare(a.start, b.start) })
	p.used = mergeRuns(p.used)
	p.usedIn = countPerGroup(&p.geometry, p.used)
	return p, nil
}

// allocJournal places the journal, with an extent leaf block in front of
// it when its extents do not fit in the inode.
func (p *plan) allocJournal(a allocator, n uint64) error {
	retry := a
	runs, err := a.take(n)
	if err != nil {
		return err
	}
	if len(splitExtents(runs)) > inodeExtents {
		a = retry
		leaf, err := a.take(1)
		if err != nil {
			return err
		}
		p.journalLeaf = leaf[0].start
		p.used = append(p.used, leaf...)
		if runs, err = a.take(n); err != nil {
			return err
		}
	}
	p.journal = splitExtents(runs)
	if len(p.journal) > leafExtents {
		return fmt.Errorf("%d extents do not fit one leaf block: %w", len(p.journal), ErrInvalid)
	}
	p.used = append(p.used, runs...)
	return nil
}

// allocator hands out blocks in increasing order, stepping over the
// packed metadata at the start of each flex group and the backup
// superblocks and descriptors (skip, sorted).
type allocator struct {
	g    *geometry
	next uint64
	skip []run
}

// take allocates n blocks as few runs as the metadata allows.
func (a *allocator) take(n uint64) ([]run, error) {
	var runs []run
	flexBlocks := uint64(flexGroups * blocksPerGroup)
	for n > 0 {
		if a.next >= a.g.blocks {
			return nil, fmt.Errorf("%d more blocks needed past the end of the filesystem: %w", n, ErrInvalid)
		}
		f := a.next / flexBlocks
		if meta := (run{a.g.flexMetaStart(f), a.g.flexMetaLen(f)}); a.next >= meta.start && a.next < meta.end() {
			a.next = meta.end()
			continue
		}
		limit := min((f+1)*flexBlocks, a.g.blocks)
		for len(a.skip) > 0 && a.skip[0].end() <= a.next {
			a.skip = a.skip[1:]
		}
		if len(a.skip) > 0 {
			if b := a.skip[0]; a.next >= b.start {
				a.next = b.end()
				continue
			} else if b.start < limit {
				limit = b.start
			}
		}
		k := min(n, limit-a.next)
		if l := len(runs); l > 0 && runs[l-1].end() == a.next {
			runs[l-1].len += k
		} else {
			runs = append(runs, run{a.next, k})
		}
		a.next += k
		n -= k
	}
	return runs, nil
}

// splitExtents cuts runs into pieces no longer than maxExtentLen.
func splitExtents(runs []run) []run {
	var out []run
	for _, r := range runs {
		for r.len > 0 {
			k := min(r.len, maxExtentLen)
			out = append(out, run{r.start, k})
			r.start += k
			r.len -= k
		}
	}
	return out
}

// mergeRuns joins adjacent runs of a sorted, non-overlapping list.
func mergeRuns(runs []run) []run {
	var out []run
	for _, r := range runs {
		if l := len(out); l > 0 && out[l-1].end() == r.start {
			out[l-1].len += r.len
			continue
		}
		out = append(out, r)
	}
	return out
}

// countPerGroup counts the blocks of runs that fall in each group.
func countPerGroup(g *geometry, runs []run) []uint32 {
	n := make([]uint32, g.groups)
	for _, r := range runs {
		for b := r.start; b < r.end(); {
			grp := b / blocksPerGroup
			k := min(r.end(), g.groupStart(grp+1)) - b
			n[grp] += uint32(k)
			b += k
		}
	}
	return n
}

// sumLen is the total length of runs.
func sumLen(runs []run) uint64 {
	var n uint64
	for _, r := range runs {
		n += r.len
	}
	return n
}
