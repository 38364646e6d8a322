package runner

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processStart is when this process started, near enough: package init.
var processStart = time.Now()

// Metric types of the Prometheus text exposition format.
const (
	gauge   = "gauge"
	counter = "counter"
)

// promtext writes the Prometheus text exposition format (version 0.0.4):
// a family's HELP and TYPE lines, then its samples, contiguous.
type promtext struct{ w *bufio.Writer }

// family starts a metric family.
func (e *promtext) family(name, typ, help string) {
	e.w.WriteString("# HELP " + name + " " + strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help) + "\n")
	e.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample; labels come in name, value pairs.
func (e *promtext) sample(name string, v float64, labels ...string) {
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(labels[i] + `="`)
			e.w.WriteString(labelEscaper.Replace(labels[i+1]))
			e.w.WriteByte('"')
		}
		e.w.WriteByte('}')
	}
	e.w.WriteByte(' ')
	e.w.Write(strconv.AppendFloat(nil, v, 'g', -1, 64))
	e.w.WriteByte('\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// one writes a family of a single sample.
func (e *promtext) one(name, typ, help string, v float64, labels ...string) {
	e.family(name, typ, help)
	e.sample(name, v, labels...)
}

// process writes the Go runtime and process figures an operator looks at
// first on a small box: memory, goroutines, CPU, open files, start time.
// Names follow the Prometheus client libraries' conventions.
func (e *promtext) process() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	e.one("go_goroutines", gauge, "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	e.one("go_memstats_heap_alloc_bytes", gauge, "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	e.one("go_memstats_sys_bytes", gauge, "Bytes of memory obtained from the OS.", float64(ms.Sys))
	e.one("go_gc_cycles_total", counter, "Completed GC cycles.", float64(ms.NumGC))
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
		e.one("process_cpu_seconds_total", counter, "Total user and system CPU time spent in seconds.", cpu)
	}
	if rss, ok := residentBytes(); ok {
		e.one("process_resident_memory_bytes", gauge, "Resident memory size in bytes.", rss)
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		e.one("process_open_fds", gauge, "Number of open file descriptors.", float64(len(ents)))
	}
	e.one("process_start_time_seconds", gauge, "Start time of the process since unix epoch in seconds.", float64(processStart.UnixNano())/1e9)
}

// residentBytes reads the resident set size from /proc/self/statm (Linux).
func residentBytes() (float64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return 0, false
	}
	return pages * float64(os.Getpagesize()), true
}
