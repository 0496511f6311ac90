package guest

// ProcessesHelperArg re-executes ferry-init (BuildHelper) to list the
// guest's processes (docker top): argv [BuildHelper, ProcessesHelperArg];
// stdout is a JSON array of ProcessInfo, read from /proc.
const ProcessesHelperArg = "ferry-ps"

// ProcessInfo is one guest process.
type ProcessInfo struct {
	PID   int    `json:"pid"`
	PPID  int    `json:"ppid"`
	UID   int    `json:"uid"`
	State string `json:"state"`
	// CPUTicks is user+system time in clock ticks (USER_HZ); StartTicks
	// the start time after boot in clock ticks.
	CPUTicks   uint64 `json:"cpu_ticks"`
	StartTicks uint64 `json:"start_ticks"`
	RSSPages   int64  `json:"rss_pages"`
	Cmd        string `json:"cmd"` // the command line, or [comm] for a kernel thread
}
