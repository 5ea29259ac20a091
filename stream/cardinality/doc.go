// Package cardinality tracks, in bounded memory, how many active series each
// metric has and how many distinct values each of its labels takes, per
// tenant and per stage (Before the rules, on the raw batch; After them, on
// the batch the rules produced). It answers "which metrics cost the most
// series, and which label is to blame", and shows what the rules saved.
//
// # Data flow
//
// A worker calls Tracker.Observe with a metrics schemas.Batch it holds, at
// stage Before with the batch it read and at After with the batch the
// rules made of it; when the rules returned the batch unchanged, one call
// at Both does the work of the two in one pass (the same counts, hashing
// each point once). The tracker reads the Arrow columns while the call
// lasts and keeps nothing that aliases the batch (names and keys it keeps
// are copied once, when a metric or label is first tracked). The caller
// keeps ownership of the batch and releases it as usual. The admin HTTP
// port reads through Tracker.Report or Tracker.Handler (JSON), and
// Report.WriteText renders the table for people.
//
// # What is counted
//
// A series is a metric name plus its label set, as Prometheus would flatten
// it: the resource attributes and the point attributes together (scope
// attributes are not labels). Its identity is a 64-bit hash of the set of
// (key, value) pairs, computed order-independently as the sum of a hash
// per pair, so attributes in any order give the same series and no sort or
// copy is needed. Per metric, one sketch holds the series
// identities and one sketch per label key the hashes of that key's values.
//
// # Cost per point
//
// Observe does as little per point as it can (observe.go, scratch.go).
// A point's attributes are hashed in one loop over their types and string
// offsets: a string value of up to 16 bytes (most label values) costs two
// loads and two multiplications (wyhash's function for short inputs), a
// pair hash one multiplication.
// Resource attributes are hashed once per resource and their values
// inserted once per metric row. Point attribute keys are hashed when they
// differ from the previous point's (one comparison of their bytes
// otherwise). Each distinct point attribute set of a batch is hashed once
// (every metric of a resource usually has the same sets): later points
// with that set cost a hash of its values' bytes and a comparison, up to
// 4,096 sets a batch, and a comparison alone when they come in the order
// the sets were first seen (the set after the previous point's is guessed
// first). A batch whose first 256 sets all differ (an attribute unique
// per series, one metric per resource) stops looking them up. A series already in its metric's exact set, or in
// the filter its series sketch keeps once dense (see below), brought its
// label values with it when it was first seen, so only new series, and
// series a full filter dropped, insert label values; a series found costs
// one probe.
// The series of a run of points of one metric go into the sketch in one
// loop, so that the sketch's cache misses overlap. Observe allocates only
// when it meets a metric or label it does not track yet, when a sketch's
// set doubles or turns dense, or when its scratch space grows for a
// larger batch than it saw before; never per point.
//
// # Window
//
// Time is cut into windows of Config.Window, aligned on the Unix epoch. Each
// tenant and stage keeps two generations of sketches: the current window's
// and the previous one's. "Active" is the union of both, so a series counts
// for between one and two windows after it was last seen, and is forgotten
// after two. Rotation is lazy (on Observe and Report), so an idle tracker
// does no work.
//
// # Bounds and memory
//
// Per tenant, stage and generation at most Config.MaxMetrics metrics are
// tracked; the series of further metrics are counted together in one
// "other" sketch (identities salted with the metric name), and their names
// in another, so the totals stay right while the breakdown is bounded. Per
// metric at most Config.MaxLabels label keys are tracked (further keys are
// flagged, not counted). At most Config.MaxTenants tenants are tracked;
// batches of further tenants are counted as dropped, and a tenant with
// nothing active for two windows frees its slot.
//
// A sketch (sketch.go) counts exactly, in a set of 64-bit hashes, until
// the set would outgrow the dense HyperLogLog it turns into
// (axiomhq/hyperloglog): series at precision 14 (2^14 one-byte registers,
// standard error 1.04/√16384 ≈ 0.8%), label values at precision 12
// (≈ 1.6%, 4 KiB: ranking labels needs less). So up to 1,536 series and
// 384 values per label the counts are exact, and a sketch never holds
// more than 16 KiB (series) or 4 KiB (label). The worst case, every sketch
// full, is per tenant, stage and generation
//
//	MaxMetrics × (16 KiB + MaxLabels × 4 KiB)
//
// plus 4 MiB of series filters (below), which with the defaults (10,000
// metrics, 64 labels) is 2.6 GiB, ×4 for two stages and two generations.
// The defaults assume what is usual: few metrics have many series and few
// labels many values.
//
// A series sketch that turned dense keeps a filter of the series hashes it
// counted (sketch.go), so that a series seen again in the window is still
// known as one and does not insert its label values again: an
// open-addressing table of 64-bit hashes with bounded probes, 32 KiB when
// the sketch turns dense, doubling at load 3/4 up to 256 KiB (about 24,000
// series), and replacing hashes once it cannot grow (a series it dropped
// costs what it did without a filter, once, and goes back in). A filter
// that cannot grow and misses for most points (its series churn or are
// too many) is dropped for the rest of the window, its bytes given back. It only ever holds
// hashes the sketch counted, so it changes no count. The filters of a
// tenant, stage and generation share 4 MiB; a metric turning dense when
// they are used up gets none (it then inserts the label values of every
// point, as all dense metrics did before filters). So the filters add at
// most 4 MiB per tenant, stage and generation, 16 MiB per tenant.
//
// Measured (BenchmarkMemory, the k8s corpus of BenchmarkObserve: 50
// metrics of 11 labels): a metric of 2,000 series holds about 56 KB (23 KB
// of sketches, 32 KiB of filter); of 16,000 series, 107 KB (the 50
// filters share the 4 MiB: 84 KB each on average); one of 20 series, under
// 2 KB. The end-to-end corpus metrics-k8s (one metric of 10,000 series)
// holds 158 KB per stage and generation (128 KiB of it the filter).
// Deployments with many tenants should lower MaxMetrics and MaxLabels. Besides, each Observe call running at once
// (not each tenant) holds a scratch space, kept for the next calls: 80
// bytes per metric row and 16 per resource attribute of the largest batch
// it saw, and at most 0.5 MiB for the table of attribute sets.
//
// Tracker is safe for concurrent use: one mutex per tenant and stage, held
// for a whole batch (both, Before then After, at Both), so workers feeding
// different tenants or stages do not contend.
package cardinality
