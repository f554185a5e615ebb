package layout

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a sweep ran.
type Machine struct {
	CPUs      int               `json:"cpus"`
	MemGiB    float64           `json:"mem_gib"`
	Kernel    string            `json:"kernel"`
	GoVersion string            `json:"go"`
	FSType    string            `json:"fs_type"`
	VM        map[string]string `json:"vm"` // the dirty-page settings in force
	Ceiling   Ceiling           `json:"disk_ceiling"`
}

// Ceiling is the output of the disk-ceiling script, measured in the same
// run on the data directory's disk.
type Ceiling struct {
	SeqWriteMiBps float64 `json:"seq_write_mibps"`
	FdatasyncUs   float64 `json:"fdatasync_us"`
	Note          string  `json:"note,omitempty"` // why it is missing
}

func probeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), VM: map[string]string{}}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				m.MemGiB = kb / (1 << 20)
			}
		}
	}
	for _, k := range []string{"dirty_ratio", "dirty_background_ratio", "dirty_bytes", "dirty_background_bytes", "dirty_expire_centisecs", "dirty_writeback_centisecs"} {
		if b, err := os.ReadFile("/proc/sys/vm/" + k); err == nil {
			m.VM[k] = strings.TrimSpace(string(b))
		}
	}
	return m
}

// readProcIO returns write_bytes from /proc/self/io (bytes this process
// caused to be sent to the block layer), or -1.
func readProcIO() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// countOpenFiles counts /proc/self/fd, or returns -1.
func countOpenFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// measureCeiling runs the disk-ceiling script on dir and parses its
// key=value lines.
func measureCeiling(script, dir string) Ceiling {
	out, err := exec.Command(script, dir).Output()
	if err != nil {
		return Ceiling{Note: "disk-ceiling script failed: " + firstLine(err.Error())}
	}
	var c Ceiling
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(v, 64)
		switch k {
		case "seq_write_MiBps":
			c.SeqWriteMiBps = f
		case "fdatasync_us":
			c.FdatasyncUs = f
		}
	}
	if c.SeqWriteMiBps == 0 {
		c.Note = "disk-ceiling script printed no seq_write_MiBps"
	}
	return c
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
