// Package aggregate merges the metric points that rules collapse into one
// series into exact aggregates per time interval. It is the pure,
// in-memory engine behind the aggregation topic: the worker marks points
// whose identity a rule changed (rules.Result.Mark), routes them by output
// series (or, under a limit, by metric) to a partition of the aggregation
// topic as a Record (AppendRecord, ReadRecord), and the partition's
// consumer feeds them to one Aggregator (Add), emits the closed intervals
// (Flush) and checkpoints it (Snapshot, Restore).
//
// # Data in and out
//
// Add reads a metrics schemas.Batch of one tenant, with per point the hash
// of its input series (before the rules) and of its output series (after;
// Hasher computes both). It keeps no reference to the batch. Flush returns
// one new metrics Batch per tenant (allocated from Config.Allocator); the
// caller releases it. An Aggregator is not safe for concurrent use.
//
// State is keyed by (tenant, output hash) for output series and by
// (tenant, input hash, output hash) for inputs: tenants never mix. An
// output series with one open interval costs about 175 bytes with short
// attributes, each of its input series about 90 more (64-bit; measured by
// BenchmarkStateBytes, estimated per rule by Stats). An Aggregator holds
// up to 65,536 distinct Specs: Add with a further one is an error.
//
// # Semantics
//
// Intervals are aligned to the Unix epoch: a point at time t belongs to
// [k*I, (k+1)*I) with k = floor(t/I). Output points have time = interval
// end.
//
// Monotonic cumulative sums: per input the last (start time, value, time)
// is kept. A point is a reset when its start time differs from the last
// one's (and is nonzero) or its value is below the last: its increase is
// then its whole value; otherwise value - last. The first point of an
// input contributes its whole value, so the output is the sum of the
// inputs' counters (as PromQL sum without(pod)), and a new input counts
// from its start. The output is a cumulative sum of all increases so far;
// it never goes backwards. Its start time is the earliest start time of
// its inputs before its first output point. It is emitted once per closed
// interval in which a point was merged.
//
// Monotonic delta sums: the deltas are summed per interval; the output is
// a delta with start = interval start.
//
// Gauges and non-monotonic sums (any temporality): per interval and input
// the value of its latest point; at close, Spec.Gauge combines them: last
// (the latest point; on equal times the larger input hash), sum, min, max,
// avg, count (inputs with a point). Ints stay ints when every value
// combined was an int (avg is a double, count an int). A gauge stays a
// gauge, a sum keeps its temporality (start: the series start for
// cumulative, the interval start for delta).
//
// Histograms: cumulative inputs keep their last point; a reset (start
// changed, count or a bucket went down) contributes the whole point,
// otherwise the difference; the output is the running total (count, sum,
// buckets; min and max are the min of mins and max of maxes while every
// contribution had them). Delta points are summed per interval. A point
// whose explicit bounds differ from the output series' (those of its
// first point) is dropped (PointsDropped["bounds_mismatch"]).
//
// Exponential histograms merge the same way at the smaller scale
// (downscaling: index >> by), zero counts summed with the larger zero
// threshold, at most 160 buckets per side (downscaled further to fit). The
// difference of two cumulative points of one input at different scales is
// taken at the coarser scale. A change of zero threshold is a reset.
//
// Summaries: SummaryDrop drops them (PointsDropped["summary"]);
// SummaryCountSum merges count and sum like a cumulative histogram's and
// emits summaries without quantiles.
//
// Points with the NO_RECORDED_VALUE flag are dropped ("no_value"); a point
// whose metric type, temporality or monotonicity differs from its output
// series' is dropped ("type_change").
//
// # Watermark, grace and late points
//
// A point without a time (0) is taken at the now of its Add. The
// watermark W of an Aggregator is the largest point time seen, but no
// later than the now of the Add that saw it: a point from the future does
// not close the intervals of other series (other tenants'). When it
// has not moved for the longest grace of the specs seen (wall clock, the
// now of Add and Flush), it follows the wall clock from then on, so the
// last interval of a quiet partition still closes. Behind tells which
// sources still have points on their way (a worker behind on their raw
// partition): they hold the watermark however long they are silent, and
// while any does, the wall clock does not move it (for at most MaxHold
// after a source's last points). An interval closes when
// its end + grace <= W; Flush emits the closed intervals a round at a
// time (every series' oldest closed interval, then each one's next), each
// series' in order. A point whose
// interval is closed (by W when it arrives) is late (PointsLate): for
// sums, histograms and summaries its increase is not lost but goes into
// the oldest open interval of its series (or W's interval); a late gauge
// point is dropped. A point not newer than its input's last point is out
// of order (PointsOutOfOrder) and dropped: for cumulative inputs nothing
// is lost, and a replay of an at-least-once bus is idempotent.
//
// Outputs depend only on the sequence of Adds and Flushes (and their
// now), not on how points are split into batches: a replay after a crash
// from a snapshot re-emits identical samples.
//
// # Staleness and limits
//
// An input without points while W moved by Config.Stale is forgotten (its
// contribution stays in the output's total; if it comes back its first
// point counts whole again); an output series without points for as long
// and without open intervals is forgotten with its labels.
//
// With Spec.Limit > 0 at most Limit output series per (tenant, metric
// name, unit, type) are admitted, first come; the points of further new
// series fold into one overflow series of the metric with the resource and
// scope of the first folded point and the point attributes
// {"otel.metric.overflow": "true"} (SeriesFolded counts the refused
// series, FoldedByMetric by metric name). An admitted series that goes
// stale frees its slot.
//
// # Labels
//
// Output points carry the labels of the first point of their series: the
// resource, scope and metric (name, description, unit, metadata, type,
// temporality, monotonicity) interned as OTLP encodings shared by
// reference count, and the point attributes as bytes per series.
// Exemplars are not carried. With Config.BySet (the worker's aggregators)
// an output batch holds the attributes as a table of the distinct sets of
// its series (schemas.Batch.ItemAttrSetTable), each point its set's
// number, rather than a copy in every point: WriteBatch writes the same
// record either way (TestBySetWritesTheSameBytes), and building it skips
// decoding and copying each point's attributes (BenchmarkK8sBacklog,
// by-set against copied).
package aggregate
