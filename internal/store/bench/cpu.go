package bench

import (
	"fmt"
	"os"
	"path/filepath"
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

// cpuTasks is the CPU time of another process's threads alive now, from
// /proc/PID/task/*/schedstat: in nanoseconds, where /proc/PID/stat counts
// 10 ms ticks, too coarse for a query of a few milliseconds. Take the
// difference over a span in which no thread ends (a server's pools).
func cpuTasks(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var ns int64
		fmt.Sscan(string(b), &ns) // the first field: time on a CPU
		sum += ns
	}
	return time.Duration(sum)
}
