package stream

import (
	"context"
	"errors"
	"log/slog"
)

// DeadLetterHook is told of the dead letters a stage wrote to the
// dead-letter topic, once they are on the bus (with exactly-once, once
// produced in the batch's transaction): stage is the stage's name
// ("worker", "aggregator", "sink/<name>"). It runs on the stage's
// goroutine, so it must be quick, and must neither keep nor modify the
// records (the status page copies what it shows of them).
type DeadLetterHook func(stage string, dead []*Record)

// ProduceDeadLetters writes dead letters (records bound for the dead-letter
// topic) with p. A dead letter is a record with headers saying why, so it
// may be larger than the dead-letter topic takes even when its record fit
// its own topic; one that never fits would hold its stage's partition for
// good. So when the topic refuses one as too large, the dead letters are
// written one by one, and those still refused without their value
// (Truncated; the record stays in its own topic for its retention).
// stripped counts those, and log (if not nil) warns of them; dead letters
// the failed first attempt wrote are written twice.
func ProduceDeadLetters(ctx context.Context, p Producer, dead []*Record, log *slog.Logger) (stripped int, err error) {
	if len(dead) == 0 {
		return 0, nil
	}
	err = p.Produce(ctx, dead...)
	if !errors.Is(err, ErrRecordTooLarge) {
		return 0, err
	}
	defer func() {
		if stripped > 0 && log != nil {
			log.Warn("dead letters too large for the dead-letter topic written without their value", "records", stripped)
		}
	}()
	for _, d := range dead {
		err := p.Produce(ctx, d)
		if errors.Is(err, ErrRecordTooLarge) {
			stripped++
			err = p.Produce(ctx, Truncated(d, 0))
		}
		if err != nil {
			return stripped, err
		}
	}
	return stripped, nil
}
