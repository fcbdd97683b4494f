package peerbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Sample is what Linux says a process has used so far.
type Sample struct {
	At     time.Time
	CPU    time.Duration // user + system time, all threads
	RSS    int64         // resident set, bytes (VmRSS)
	CtxSw  int64         // voluntary + involuntary context switches, summed over the live threads
	Writes int64         // write-class system calls (write, writev, …: /proc/PID/io syscw), all threads
}

// Take reads pid's counters from /proc.
func Take(pid int) (Sample, error) {
	s := Sample{At: time.Now()}
	dir := fmt.Sprintf("/proc/%d", pid)
	raw, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, err
	}
	// Fields after the command name, which may hold spaces, in parentheses.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 || i+2 > len(raw) {
		return s, fmt.Errorf("%s/stat: unexpected %q", dir, raw)
	}
	f := strings.Fields(string(raw[i+2:]))
	if len(f) < 13 {
		return s, fmt.Errorf("%s/stat: %d fields", dir, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPU = time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux

	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, err
	}
	if kb, ok := field(string(status), "VmRSS:"); ok {
		s.RSS = kb * 1024
	}
	tasks, _ := filepath.Glob(dir + "/task/*/status")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended meanwhile
		}
		v, _ := field(string(b), "voluntary_ctxt_switches:")
		n, _ := field(string(b), "nonvoluntary_ctxt_switches:")
		s.CtxSw += v + n
	}
	io, err := os.ReadFile(dir + "/io")
	if err != nil {
		return s, fmt.Errorf("%s/io: %w (reading another process's I/O counters takes the same user or root)", dir, err)
	}
	s.Writes, _ = field(string(io), "syscw:")
	return s, nil
}

// field returns the number after name at the start of a line of text.
func field(text, name string) (int64, bool) {
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
