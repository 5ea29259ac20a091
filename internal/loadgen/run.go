package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options shape one run of a load.
type Options struct {
	Profile Profile
	Target  Target
	// Connections send at once, one request in flight each (default 1).
	Connections int
	// Rate, when > 0, makes the run an open loop: requests are due at
	// Rate items per second whatever the answers, and a request's latency
	// counts from when it was due (a sender that falls behind shows as
	// latency, not as a slower rate). 0: a closed loop, each connection
	// sending its next request when the last is answered.
	Rate float64
	// The run stops after Duration or Requests, whichever comes first
	// (at least one must be set), or when ctx ends.
	Duration time.Duration
	Requests int
	// First is the number of the first request (of the profile): a run
	// continuing another sends new data.
	First int
}

// Result is what a run measured.
type Result struct {
	Requests, Failed int64
	Items, Bytes     int64 // acknowledged
	Elapsed          time.Duration
	// Latency of the acknowledged requests, in microseconds.
	Latency *hdrhistogram.Histogram
	// PerSecond is the items acknowledged in each second of the run.
	PerSecond []int64
	// Errors holds the first few errors, Next the number of the request
	// after the last one sent.
	Errors []string
	Next   int
}

// ItemsPerSecond is the acknowledged throughput.
func (r *Result) ItemsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Items) / r.Elapsed.Seconds()
}

// Quantile is a latency quantile (0 to 1).
func (r *Result) Quantile(q float64) time.Duration {
	return time.Duration(r.Latency.ValueAtQuantile(q*100)) * time.Microsecond
}

// newLatency is a histogram of latencies from 1 µs to 10 minutes, to 3
// significant digits.
func newLatency() *hdrhistogram.Histogram { return hdrhistogram.New(1, 600_000_000, 3) }

// Run sends the load and measures it.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Profile == nil {
		return nil, errors.New("loadgen: no profile")
	}
	if o.Duration <= 0 && o.Requests <= 0 {
		return nil, errors.New("loadgen: give a duration or a number of requests")
	}
	conns := max(o.Connections, 1)
	senders := make([]sender, conns)
	for i := range senders {
		s, err := o.Target.dial(o.Profile.Signal())
		if err != nil {
			for _, d := range senders[:i] {
				d.close()
			}
			return nil, err
		}
		senders[i] = s
	}
	defer func() {
		for _, s := range senders {
			s.close()
		}
	}()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}

	res := &Result{Latency: newLatency()}
	var (
		mu   sync.Mutex
		next atomic.Int64 // the next request to take, from o.First
		wg   sync.WaitGroup
	)
	next.Store(int64(o.First))
	start := time.Now()
	// In an open loop request k (from 0) is due at start + k × interval.
	var interval time.Duration
	if o.Rate > 0 {
		_, items := o.Profile.Request(nil, o.First)
		interval = time.Duration(float64(items) / o.Rate * float64(time.Second))
	}
	take := func() (int, time.Time, bool) {
		j := int(next.Add(1) - 1)
		k := j - o.First
		if o.Requests > 0 && k >= o.Requests {
			return 0, time.Time{}, false
		}
		due := time.Now()
		if interval > 0 {
			due = start.Add(time.Duration(k) * interval)
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return 0, time.Time{}, false
				case <-t.C:
				}
			}
		}
		return j, due, ctx.Err() == nil
	}
	for _, s := range senders {
		wg.Go(func() {
			var buf []byte
			for {
				j, due, ok := take()
				if !ok {
					return
				}
				var items int
				buf, items = o.Profile.Request(buf, j)
				err := s.send(context.WithoutCancel(ctx), buf)
				now := time.Now()
				mu.Lock()
				res.Requests++
				if err != nil {
					res.Failed++
					if len(res.Errors) < 5 {
						res.Errors = append(res.Errors, fmt.Sprintf("request %d: %v", j, err))
					}
				} else {
					res.Items += int64(items)
					res.Bytes += int64(len(buf))
					res.Latency.RecordValue(max(1, now.Sub(due).Microseconds()))
					sec := int(now.Sub(start) / time.Second)
					for len(res.PerSecond) <= sec {
						res.PerSecond = append(res.PerSecond, 0)
					}
					res.PerSecond[sec] += int64(items)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Next = o.First + int(res.Requests) // taken in order; those taken after the end were not sent
	return res, nil
}
