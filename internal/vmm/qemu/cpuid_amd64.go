package qemu

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// cpuidTSCkHz reads the TSC frequency from CPUID leaf 0x15 (TSC/crystal
// ratio × crystal Hz) or, failing that, leaf 0x16 (base MHz). Many CPUs
// (AMD, most hypervisors) report neither.
func cpuidTSCkHz() uint64 {
	max, _, _, _ := cpuid(0, 0)
	if max >= 0x15 {
		den, num, hz, _ := cpuid(0x15, 0)
		if den != 0 && num != 0 && hz != 0 {
			return uint64(hz) * uint64(num) / uint64(den) / 1000
		}
	}
	if max >= 0x16 {
		mhz, _, _, _ := cpuid(0x16, 0)
		if mhz&0xffff != 0 {
			return uint64(mhz&0xffff) * 1000
		}
	}
	return 0
}
