package schemas

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-dev/sluice/internal/arrowpool"
	"github.com/sluice-dev/sluice/internal/otlptest"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// textColumn encodes lines as a string column and decodes it back, returning
// the mode the encoder chose and the decoded lines.
func textColumn(t testing.TB, lines []string, nulls []bool) (byte, []string) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sb := array.NewStringBuilder(mem)
	for i, l := range lines {
		if i < len(nulls) && nulls[i] {
			sb.AppendNull()
		} else {
			sb.Append(l)
		}
	}
	col := sb.NewArray()
	sb.Release()
	defer col.Release()
	e := &encoder{mem: mem}
	if err := e.col(col); err != nil {
		t.Fatal(err)
	}
	mode := e.out[1] // after the validity byte and its bitmap when nulls
	if e.out[0] == nullSome {
		mode = e.out[1+(len(lines)+7)/8]
	}
	d := &decoder{b: e.out, mem: mem, budget: maxDecodeElems, format: recordFormat}
	data := d.col(arrow.BinaryTypes.String, len(lines))
	if d.err != nil {
		t.Fatalf("decode: %v", d.err)
	}
	if len(d.b) != 0 {
		t.Fatalf("%d bytes left after the column", len(d.b))
	}
	got := array.NewStringData(data)
	data.Release()
	defer got.Release()
	if err := validateFull(got); err != nil {
		t.Fatal(err)
	}
	out := make([]string, got.Len())
	for i := range out {
		if got.IsNull(i) != (i < len(nulls) && nulls[i]) {
			t.Fatalf("line %d: null %v", i, got.IsNull(i))
		}
		out[i] = got.Value(i)
	}
	return mode, out
}

// The tokens at the edges of each variable kind, escaped template bytes,
// non-ASCII text and empty lines come back byte for byte, with and without
// nulls, through the templated mode.
func TestTextRoundTrip(t *testing.T) {
	tricky := []string{
		"GET /api/v1/items/%d completed with status %d in %dms request_id=%016x",
		"0 00 000 0042 7 18446744073709551615 9999999999999999999 10000000000000000000 %d",
		"hex: ab12 AB12 abc12 deadbeef01 DEADBEEF01 0x1f %x, %d items",
		"ctl\x00\x01\x02\x03\x04 bytes %d\x00%d\x03",
		"unicode: naïve café 日本語 %d ✓ v%d.%d.%d-rc1",
		"",
		"   %d   ",
		"user_%d pod-%d 10.0.%d.%d:%d -%d +%d 1.%05d",
		"UUID 550e8400-e29b-41d4-a716-%012x ok %d",
	}
	r := rand.New(rand.NewPCG(5, 6))
	var lines []string
	var nulls []bool
	for i := range 400 {
		f := tricky[r.IntN(len(tricky))]
		args := make([]any, strings.Count(f, "%"))
		for k := range args {
			args[k] = r.Uint64N(1 << (1 + r.IntN(63)))
		}
		lines = append(lines, fmt.Sprintf(f, args...)+strings.Repeat(" pad", 5))
		nulls = append(nulls, i%7 == 3)
	}
	for _, withNulls := range []bool{false, true} {
		var nl []bool
		if withNulls {
			nl = nulls
		}
		mode, got := textColumn(t, lines, nl)
		if mode != seqText {
			t.Fatalf("nulls %v: mode %d, want templated text", withNulls, mode)
		}
		for i := range lines {
			if withNulls && nulls[i] {
				continue
			}
			if got[i] != lines[i] {
				t.Fatalf("line %d:\n got %q\nwant %q", i, got[i], lines[i])
			}
		}
	}
}

// Free text (every line a template of its own) and short strings are not
// templated.
func TestTextFallsBack(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	words := strings.Fields("the quick brown fox jumps over lazy dog while sluice moves telemetry across clusters every day")
	var free, short []string
	for i := range 100 {
		var sb strings.Builder
		for range 12 {
			sb.WriteString(words[r.IntN(len(words))] + " ")
		}
		free = append(free, sb.String())
		short = append(short, fmt.Sprintf("v%d", i))
	}
	for name, lines := range map[string][]string{"free text": free, "short": short} {
		mode, got := textColumn(t, lines, nil)
		if mode != seqPlain {
			t.Errorf("%s: mode %d, want plain", name, mode)
		}
		for i := range lines {
			if got[i] != lines[i] {
				t.Fatalf("%s line %d: got %q", name, i, got[i])
			}
		}
	}
}

// Templated text makes the varied log corpus's bodies much smaller than
// plain strings under zstd.
func TestTextSmallerThanPlain(t *testing.T) {
	b := NewBuilder(otlpwire.Logs, nil)
	defer b.Release()
	if _, err := b.Append(logsCorpus()); err != nil {
		t.Fatal(err)
	}
	batch := b.Build()
	defer batch.Release()
	body := batch.Items.Column(LogBody).(*array.Struct).Field(AnyStr).(*array.String)
	size := func(text bool) int {
		e := &encoder{mem: memory.DefaultAllocator}
		e.binary(body.ValueOffsets(), body.ValueBytes(), text)
		return len(zenc().EncodeAll(e.out, nil))
	}
	plain, text := size(false), size(true)
	t.Logf("bodies of %d lines: plain+zstd %d B, templated+zstd %d B", body.Len(), plain, text)
	if text*3 > plain*2 {
		t.Fatalf("templated text %d B is not a third smaller than plain %d B", text, plain)
	}
}

// templatedLogs is a logs request of n records whose bodies template well.
func templatedLogs(n int) []byte {
	req := &collogs.ExportLogsServiceRequest{}
	sl := &logs.ScopeLogs{}
	for i := range n {
		body := fmt.Sprintf("GET /api/v1/items/%d completed with status %d in %dms request_id=%016x", i*7919%1000, 200+i%3, i%50, uint64(i)*0x9e3779b97f4a7c15)
		sl.LogRecords = append(sl.LogRecords, &logs.LogRecord{TimeUnixNano: uint64(i), Body: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: body}}})
	}
	req.ResourceLogs = []*logs.ResourceLogs{{ScopeLogs: []*logs.ScopeLogs{sl}}}
	b, _ := proto.Marshal(req)
	return b
}

// FuzzText: any set of lines round-trips through the string codec, whichever
// mode it picks.
func FuzzText(f *testing.F) {
	f.Add("GET /a/1 200 12ms id=00ff\nGET /a/22 404 3ms id=abcd\nPOST /b/3 500 1ms id=0123", uint8(3))
	f.Add("\x00\x01 1\n\x02\x03 02\n", uint8(9))
	f.Add("18446744073709551615 x\n0 0\n", uint8(20))
	f.Fuzz(func(t *testing.T, text string, repeat uint8) {
		if !utf8.ValidString(text) {
			return // the Builder lets no invalid UTF-8 into string columns
		}
		lines := strings.Split(text, "\n")
		for len(lines) < 8+int(repeat%32) {
			lines = append(lines, lines[len(lines)%len(lines)]+strings.Repeat(" ", 20))
		}
		_, got := textColumn(t, lines, nil)
		for i := range lines {
			if got[i] != lines[i] {
				t.Fatalf("line %d: got %q want %q", i, got[i], lines[i])
			}
		}
	})
}

// Values of record format 2 (written before templated text) still read, and
// give back the requests they were made from.
func TestReadFormat2(t *testing.T) {
	for _, sig := range otlpwire.Signals {
		val, err := os.ReadFile("testdata/format2/" + sig.String() + ".bin")
		if err != nil {
			t.Fatal(err)
		}
		pb, err := os.ReadFile("testdata/format2/" + sig.String() + ".pb")
		if err != nil {
			t.Fatal(err)
		}
		if val[len(recordMagic)+len(Version)+1] != 2 {
			t.Fatalf("%v: testdata is not format 2", sig)
		}
		b, err := ReadBatch(val, nil)
		if err != nil {
			t.Fatalf("%v: %v", sig, err)
		}
		out, err := ToOTLP(b, nil)
		b.Release()
		if err != nil {
			t.Fatal(err)
		}
		want, got := otlpwire.NewRequest(sig), otlpwire.NewRequest(sig)
		if err := proto.Unmarshal(pb, want); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(out, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(want, got) {
			t.Fatalf("%v: format 2 value differs from its request", sig)
		}
	}
}

// BenchmarkTokenize: splitting the logs-varied bodies into templates and
// variables, the first half of templated text's cost.
func BenchmarkTokenize(b *testing.B) {
	bl := NewBuilder(otlpwire.Logs, nil)
	defer bl.Release()
	if _, err := bl.Append(logsCorpus()); err != nil {
		b.Fatal(err)
	}
	batch := bl.Build()
	defer batch.Release()
	body := batch.Items.Column(LogBody).(*array.Struct).Field(AnyStr).(*array.String)
	offs, data := body.ValueOffsets(), body.ValueBytes()
	var x textEnc
	var dst []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		x.vars = x.vars[:0]
		for i := range body.Len() {
			dst = x.tokenize(dst[:0], data[offs[i]:offs[i+1]], offs[i])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(body.Len()), "ns/line")
}

// TestTextDecoderReuse: ReadBatch's decoders, and their text scratch, are
// reused across calls; values of different sizes and templates read one
// after another, on a poisoning pool, each give back their own request.
func TestTextDecoderReuse(t *testing.T) {
	pool := arrowpool.NewPoisoned()
	bodies := [][]byte{otlptest.Corpora()[1].Body, templatedLogs(40), templatedLogs(3000), templatedLogs(9)}
	var values [][]byte
	for _, body := range bodies {
		b := NewBuilder(otlpwire.Logs, nil)
		if _, err := b.Append(body); err != nil {
			t.Fatal(err)
		}
		batch := b.Build()
		var buf bytes.Buffer
		if err := WriteBatch(&buf, batch); err != nil {
			t.Fatal(err)
		}
		batch.Release()
		b.Release()
		values = append(values, buf.Bytes())
	}
	for round := range 3 {
		for i, v := range values {
			out, _, err := BatchToOTLP(v, nil, pool)
			if err != nil {
				t.Fatal(err)
			}
			want, got := otlpwire.NewRequest(otlpwire.Logs), otlpwire.NewRequest(otlpwire.Logs)
			if err := proto.Unmarshal(bodies[i], want); err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(out, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(want, got) {
				t.Fatalf("round %d, value %d: differs from its request", round, i)
			}
		}
	}
	if n := pool.Live(); n != 0 {
		t.Fatalf("%d bytes not freed", n)
	}
}
