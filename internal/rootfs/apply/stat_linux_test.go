package apply_test

import "syscall"

func stat(p string, st *os_stat) error {
	var s syscall.Stat_t
	if err := syscall.Stat(p, &s); err != nil {
		return err
	}
	st.nlink = uint64(s.Nlink)
	return nil
}
