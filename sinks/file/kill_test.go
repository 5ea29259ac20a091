package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/stream"
)

const killRecords = 40

// killHelper is the subprocess of TestKillDuringRotation: it writes records
// FROM to killRecords-1, one per Write, in files rotated at every Write,
// printing the number of each record whose Write returned (the position a
// sink would commit). With KILL_AT=<step>:<n> it SIGKILLs itself at that
// step of its n-th rotation.
func killHelper() {
	dir := os.Getenv("SLUICE_FILE_KILL_DIR")
	from, _ := strconv.Atoi(os.Getenv("SLUICE_FILE_KILL_FROM"))
	s, err := New(Config{Path: dir, MaxFileBytes: 1, MaxFiles: 1000}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var step string
	var at, rotations int
	fmt.Sscanf(os.Getenv("SLUICE_FILE_KILL_AT"), "%s %d", &step, &at)
	s.step = func(name string) {
		if name == "closed" {
			rotations++
		}
		if name == step && rotations == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	out := bufio.NewWriter(os.Stdout)
	for i := from; i < killRecords; i++ {
		if err := s.Write(context.Background(), []*stream.Record{tenantRecord(otlpwire.Traces, i, "t")}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
	s.Close()
}

// runKillHelper runs the helper from record from, returns the records it
// acknowledged and whether it was killed.
func runKillHelper(t *testing.T, dir string, from int, killAt string) (acked []int, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringRotation$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SLUICE_FILE_KILL_HELPER=1", "SLUICE_FILE_KILL_DIR="+dir,
		"SLUICE_FILE_KILL_FROM="+strconv.Itoa(from), "SLUICE_FILE_KILL_AT="+killAt)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			acked = append(acked, n)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return acked, true
		}
	}
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	return acked, false
}

// A sink process killed (SIGKILL) at each step of a rotation, then started
// again from the first record it had not acknowledged, as a restarted sink
// reads from its committed position: every record is in the files at least
// once, and every line of every file is a whole, valid OTLP/JSON request.
func TestKillDuringRotation(t *testing.T) {
	if os.Getenv("SLUICE_FILE_KILL_HELPER") != "" {
		killHelper()
		return
	}
	for _, step := range []string{"closed", "renamed", "removed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			acked, killed := runKillHelper(t, dir, 0, step+" 5")
			if !killed || len(acked) == 0 || len(acked) >= killRecords {
				t.Fatalf("first run: killed %v after acknowledging %d records", killed, len(acked))
			}
			rest, killed := runKillHelper(t, dir, acked[len(acked)-1]+1, "")
			if killed || len(acked)+len(rest) != killRecords {
				t.Fatalf("second run: killed %v, acknowledged %d+%d records, want %d", killed, len(acked), len(rest), killRecords)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "t", "traces*.jsonl"))
			want := map[string]int{}
			for i := range killRecords {
				want[string(tenantRecord(otlpwire.Traces, i, "t").Value)] = i
			}
			seen := make([]int, killRecords)
			lines_, items := 0, 0
			for _, f := range files {
				for _, pb := range lines(t, otlpwire.Traces, f) { // fails on an invalid line
					i, ok := want[string(pb)]
					if !ok {
						t.Fatalf("%s: a line of no record", f)
					}
					seen[i]++
					lines_++
					n, _ := otlpwire.Count(otlpwire.Traces, pb)
					items += n
				}
			}
			per := otlptest.Shape{Resources: 2, Items: 3, Points: 2}.ItemCount(otlpwire.Traces)
			for i, n := range seen {
				if n == 0 {
					t.Errorf("record %d lost", i)
				}
			}
			t.Logf("items in %d, out %d (%d lines in %d files; a repeat is the batch in hand at the kill)", killRecords*per, items, lines_, len(files))
			if items < killRecords*per {
				t.Errorf("items in %d, out %d", killRecords*per, items)
			}
		})
	}
}
