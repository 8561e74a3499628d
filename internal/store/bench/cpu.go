package bench

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// CPU time, so results can be read on a machine shared with other work:
// wall time there depends on the neighbours, CPU time much less.

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSelf is the CPU time of this process (DuckDB runs inside it).
func cpuSelf() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// cpuChildren is the CPU time of the finished child processes (nfdump).
func cpuChildren() time.Duration { return rusage(syscall.RUSAGE_CHILDREN) }

// cpuPID is the CPU time of another process (the ClickHouse server).
func cpuPID(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ut, st int64
	fmt.Sscan(f[11], &ut) // utime and stime, fields 14 and 15, in clock ticks
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * time.Second / 100
}
