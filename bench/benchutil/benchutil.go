// Package benchutil holds what the capacity benchmarks share: reading a
// running sluice's metrics from its admin endpoint, and a gRPC codec for
// requests encoded beforehand.
package benchutil

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// MetricSum is the sum of the samples of metric name (every label set) at
// the admin endpoint addr; ok is false when it has none.
func MetricSum(addr, name string) (sum float64, ok bool, err error) {
	if addr == "" {
		return 0, false, fmt.Errorf("no admin address")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, found := strings.CutPrefix(line, name)
		if !found || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %q: %w", addr, line, err)
		}
		sum, ok = sum+v, true
	}
	return sum, ok, sc.Err()
}

// CPUSeconds is process_cpu_seconds_total at the admin endpoint addr.
func CPUSeconds(addr string) (float64, error) {
	v, ok, err := MetricSum(addr, "process_cpu_seconds_total")
	if err == nil && !ok {
		err = fmt.Errorf("no process_cpu_seconds_total at %s", addr)
	}
	return v, err
}
