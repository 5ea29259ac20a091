package kafka

import (
	"testing"

	"github.com/klauspost/compress/zstd"
)

func BenchmarkZZDecomp(b *testing.B) {
	batch := compressionBatches(b)[0]
	for _, bb := range compressionBatches(b) {
		if bb.name == "k8s-1000pt" {
			batch = bb
		}
	}
	for _, noEnt := range []bool{false, true} {
		for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault} {
			enc, _ := zstd.NewWriter(nil, zstd.WithWindowSize(64<<10), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderLevel(lvl), zstd.WithEncoderCRC(false), zstd.WithNoEntropyCompression(noEnt))
			wire := enc.EncodeAll(batch.raw, nil)
			name := lvl.String()
			if noEnt {
				name += "-noent"
			}
			b.Run(name+"/comp", func(b *testing.B) {
				var dst []byte
				for b.Loop() {
					dst = enc.EncodeAll(batch.raw, dst[:0])
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch.points), "ns/pt")
				b.ReportMetric(float64(len(wire))/float64(batch.points), "B/pt")
			})
			b.Run(name+"/decomp", func(b *testing.B) {
				d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
				var dst []byte
				for b.Loop() {
					dst, _ = d.DecodeAll(wire, dst[:0])
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch.points), "ns/pt")
			})
		}
	}
}
