package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/kafkatest"
	"github.com/sluice-dev/sluice/stream"
	"github.com/sluice-dev/sluice/stream/stage"
)

// envTxnChild carries the settings of the worker that
// TestTransactCrashChild runs in a process of its own:
// brokers|input|output|group|transactional id|batch to crash in.
const envTxnChild = "SLUICE_KAFKA_TXN_CHILD"

// txSessionTimeout lets the group give a killed member's partitions away
// soon (the broker's minimum).
const txSessionTimeout = 6 * time.Second

// transform is the handler of the test's worker: "in-i" becomes "out-i"
// on the same partition of out, produced through tx. before, when set, is
// called with the batch number and the output before producing it and
// after, when set, once it was produced; before may change the output.
func transform(tx stream.TxConsumer, out string, before func(n int, recs []*stream.Record) []*stream.Record, after func(n int)) stage.Handler {
	n := 0
	return func(ctx context.Context, recs []*stream.Record) error {
		n++
		outs := make([]*stream.Record, len(recs))
		for i, r := range recs {
			v, ok := strings.CutPrefix(string(r.Value), "in-")
			if !ok {
				return fmt.Errorf("unexpected input %q", r.Value)
			}
			outs[i] = &stream.Record{Topic: out, Partition: r.Partition, Value: []byte("out-" + v)}
		}
		if before != nil {
			outs = before(n, outs)
		}
		if err := tx.Produce(ctx, outs...); err != nil {
			return err
		}
		if after != nil {
			after(n)
		}
		return nil
	}
}

// runTxWorker runs a stage with transform on tx until ctx ends.
func runTxWorker(t testing.TB, ctx context.Context, tx stream.TxConsumer, h stage.Handler) error {
	st, err := stage.New(stage.Config{Name: "worker", Consumer: tx, Handle: h, LagInterval: -1,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		return err
	}
	return st.Run(ctx)
}

// TestTransactCrashChild is the worker that TestTransactCrash kills: it
// runs only in the process that test starts. It commits crashAt-1
// batches, produces the next one and kills itself before committing it.
func TestTransactCrashChild(t *testing.T) {
	env := os.Getenv(envTxnChild)
	if env == "" {
		t.Skip("runs as TestTransactCrash's subprocess only")
	}
	f := strings.Split(env, "|")
	crashAt, _ := strconv.Atoi(f[5])
	b, err := New(Config{Brokers: strings.Split(f[0], ","), SessionTimeout: txSessionTimeout, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := b.ConsumeTransactional(stream.ConsumerConfig{Group: f[3], Topics: []string{f[1]}, MaxPollRecords: 100}, f[4])
	if err != nil {
		t.Fatal(err)
	}
	h := transform(tx, f[2], nil, func(n int) {
		if n == crashAt {
			// The batch's output is acknowledged in the open
			// transaction; its positions are not committed.
			fmt.Println("CRASH after producing batch", n)
			os.Stdout.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	})
	t.Fatal(runTxWorker(t, context.Background(), tx, h))
}

// TestTransactCrash kills a transactional worker (a process of its own,
// SIGKILL) after it produced a batch and before it committed it, then runs
// a second worker with the same group and transactional id: a
// read-committed reader of the output sees every record exactly once; a
// read-uncommitted reader also sees the crashed transaction's records.
func TestTransactCrash(t *testing.T) {
	const n = 2000
	brokers := kafkatest.Brokers(t)
	b := newBus(t, Config{SessionTimeout: txSessionTimeout})
	in, out := topic(t, b, 3), topic(t, b, 3)
	produce(t, b, values(in, "in-", n, 3)...)
	group := groupName(t)
	txnID := "sluice-test-" + group
	cfg := stream.ConsumerConfig{Group: group, Topics: []string{in}, MaxPollRecords: 100}

	// Worker A, killed in its 5th batch.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTransactCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), envTxnChild+"="+strings.Join([]string{strings.Join(brokers, ","), in, out, group, txnID, "5"}, "|"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL || !strings.Contains(logs.String(), "CRASH") {
		t.Fatalf("worker A: %v, want killed after producing; output:\n%s", err, logs.String())
	}
	t.Logf("worker A killed after producing its 5th batch")

	// Worker B takes over.
	tx, err := b.ConsumeTransactional(cfg, txnID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := runTxWorker(t, wctx, tx, transform(tx, out, nil, nil)); err != nil {
			t.Error(err)
		}
	})
	got := readExactlyOnce(t, b, out, n, func() { stop(); wg.Wait() })

	// A read-uncommitted reader also gets the batch of the transaction A
	// left open (B's start aborted it): duplicates.
	all := sum(readAll(t, brokers, out, kgo.ReadUncommitted()))
	t.Logf("read committed: %d output records; read uncommitted: %d", sum(got), all)
	if all <= n {
		t.Errorf("a read-uncommitted reader got %d output records, want more than %d (the aborted batch)", all, n)
	}
}

// readExactlyOnce reads out with a read-committed group consumer until it
// got "out-0" to "out-<n-1>", calls stop (which must stop every worker),
// then marks the end of out and reads up to it. It fails t unless every
// output record was read exactly once, and returns the values read.
func readExactlyOnce(t testing.TB, b *Bus, out string, n int, stop func()) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	reader := consume(t, b, stream.ConsumerConfig{Group: groupName(t), Topics: []string{out}})
	got := map[string]int{}
	read := func(until func() bool) {
		t.Helper()
		for !until() {
			recs, err := reader.Poll(ctx)
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("%d of %d output records: %v", len(got), n, err)
				}
				t.Logf("poll: %v", err) // e.g. a failed join: the client joins again
				continue
			}
			for v := range valueSet(recs) {
				got[v]++
			}
		}
	}
	read(func() bool { return len(got) >= n })
	stop()
	// Everything the workers wrote is before these: read up to them.
	ends := values(out, "end-", int(b.Partitions(out)), b.Partitions(out))
	produce(t, b, ends...)
	read(func() bool { return got["end-0"]+got["end-1"]+got["end-2"] == 3 })
	for i := range n {
		if c := got["out-"+strconv.Itoa(i)]; c != 1 {
			t.Errorf("out-%d read %d times, want once", i, c)
		}
	}
	for _, r := range ends {
		delete(got, string(r.Value))
	}
	if len(got) != n {
		t.Errorf("%d distinct records read, want %d", len(got), n)
	}
	return got
}

// readAll reads topic from the start with isolation level iso until it
// got the three "end-" records, and counts the values.
func readAll(t testing.TB, brokers []string, topic string, iso kgo.IsolationLevel) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	for got["end-0"]+got["end-1"]+got["end-2"] < 3 {
		f := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		f.EachRecord(func(r *kgo.Record) { got[string(r.Value)]++ })
	}
	for i := range 3 {
		delete(got, "end-"+strconv.Itoa(i))
	}
	return got
}

// sum is the number of values counted in got.
func sum(got map[string]int) (n int) {
	for _, c := range got {
		n += c
	}
	return n
}

// TestTransactProduceError fails a produce inside a transaction after
// other records of the batch were acknowledged in it: the transaction is
// aborted, the stage produces the batch again in a new one, and every
// output record is read exactly once.
func TestTransactProduceError(t *testing.T) {
	const n = 600
	b := newBus(t, Config{MaxRecordBytes: 64 << 10})
	in, out := topic(t, b, 3), topic(t, b, 3)
	produce(t, b, values(in, "in-", n, 3)...)
	tx, err := b.ConsumeTransactional(stream.ConsumerConfig{Group: groupName(t), Topics: []string{in}, MaxPollRecords: 100}, "sluice-test-"+groupName(t))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		errs   []error
		failed []*stream.Record
	)
	h := transform(tx, out, func(n int, outs []*stream.Record) []*stream.Record {
		if n != 2 {
			return outs
		}
		// The second batch's first attempt: its records and one too
		// large for the producer.
		mu.Lock()
		failed = outs
		mu.Unlock()
		big := &stream.Record{Topic: out, Partition: 0, Value: bytes.Repeat([]byte("x"), 100<<10)}
		return append(append([]*stream.Record(nil), outs...), big)
	}, nil)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		err := runTxWorker(t, ctx, tx, func(ctx context.Context, recs []*stream.Record) error {
			err := h(ctx, recs)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	})
	readExactlyOnce(t, b, out, n, func() { stop(); wg.Wait() })
	if len(errs) != 1 || !errors.Is(errs[0], stream.ErrRecordTooLarge) {
		t.Fatalf("handler errors %v, want one ErrRecordTooLarge", errs)
	}
	t.Logf("failed produce: %v", errs[0])
	// The failed attempt's records were written, in the aborted
	// transaction: a read-uncommitted reader gets them twice.
	all := readAll(t, kafkatest.Brokers(t), out, kgo.ReadUncommitted())
	twice := 0
	for _, r := range failed {
		if all[string(r.Value)] == 2 {
			twice++
		}
	}
	t.Logf("read uncommitted: %d records, %d of the %d of the failed attempt twice", sum(all), twice, len(failed))
	if twice == 0 {
		t.Errorf("no record of the failed attempt was written in its transaction: the test did not abort anything")
	}
}

// TestTransactRebalance has a second transactional worker join the group
// while the first one works, so that transactions open during the
// rebalance are aborted and their records polled again: every output
// record is read exactly once.
func TestTransactRebalance(t *testing.T) {
	const n = 3000
	b := newBus(t, Config{})
	in, out := topic(t, b, 4), topic(t, b, 3)
	produce(t, b, values(in, "in-", n, 4)...)
	cfg := stream.ConsumerConfig{Group: groupName(t), Topics: []string{in}, MaxPollRecords: 50}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	batches := make(chan int, 1000)
	start := func(name string) {
		tx, err := b.ConsumeTransactional(cfg, "sluice-test-"+cfg.Group+"-"+name)
		if err != nil {
			t.Fatal(err)
		}
		h := transform(tx, out, func(_ int, outs []*stream.Record) []*stream.Record {
			for i := range outs {
				outs[i].Partition = -1 // out has fewer partitions
			}
			return outs
		}, func(n int) { batches <- n })
		wg.Go(func() {
			if err := runTxWorker(t, ctx, tx, h); err != nil {
				t.Error(err)
			}
		})
	}
	start("a")
	for range 5 {
		<-batches // a is under way
	}
	start("b")
	go func() {
		for range batches {
		}
	}()
	readExactlyOnce(t, b, out, n, func() { stop(); wg.Wait(); close(batches) })
}
