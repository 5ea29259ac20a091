package nats

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// A group's position lives in nats-server's consumer state file,
// <store>/<account>/streams/<stream>/obs/<consumer>/o.dat. nats-server
// (server/filestore.go, consumerFileStore.stateWithCopyLocked) reads it at
// start and:
//
//   - when the file is missing or empty ("if len(buf) == 0 { return state,
//     nil }"), loads the consumer at position 0 without a word: every record
//     the stream retains is delivered again;
//   - when it cannot decode it (bad magic, truncated varints:
//     errCorruptState), does not load the consumer at all (a warning "Error
//     adding consumer ... corrupt state file"), and every later attempt to
//     create it fails the same way, since its directory is still there;
//   - when the bytes decode to other numbers, takes them: the group resumes
//     before its position (duplicates) or after it (records skipped).
//
// NewEmbedded refuses to start in the second case, naming the directory
// (sluice could not consume the group's topic anyway). For the others, Close
// records each durable consumer's position in positionsFile, and the next
// NewEmbedded compares the consumers with the record: see checkPositions.
const positionsFile = "sluice-positions.json"

// positions is what Close records. Exact says that no other client could
// move a consumer between the record and the shutdown (no listener), so
// that a position further on at the next start is damage too.
type positions struct {
	Exact     bool       `json:"exact"`
	Consumers []position `json:"consumers"`
}

type position struct {
	Account  string `json:"account"`
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	// AckFloor is the stream sequence up to which every record was
	// acknowledged (committed); Delivered the last one handed out.
	AckFloor  uint64 `json:"ack_floor"`
	Delivered uint64 `json:"delivered"`
	// first is the stream's first sequence, at start.
	first uint64
}

// consumerPositions reads the durable consumers' positions from srv, in
// memory: no I/O.
func consumerPositions(srv *server.Server) (map[[3]string]position, error) {
	info, err := srv.Jsz(&server.JSzOptions{Accounts: true, Consumer: true, Config: true})
	if err != nil {
		return nil, err
	}
	if info.Disabled {
		return nil, errors.New("JetStream is not running")
	}
	got := map[[3]string]position{}
	for _, acc := range info.AccountDetails {
		for _, st := range acc.Streams {
			for _, ci := range st.Consumer {
				if ci == nil || ci.Config == nil || ci.Config.Durable == "" {
					continue // ephemeral: gone with its client
				}
				got[[3]string{acc.Id, st.Name, ci.Name}] = position{Account: acc.Id, Stream: st.Name, Consumer: ci.Name,
					AckFloor: ci.AckFloor.Stream, Delivered: ci.Delivered.Stream, first: st.State.FirstSeq}
			}
		}
	}
	return got, nil
}

// positionsOf sorts pos into the record Close writes.
func positionsOf(pos map[[3]string]position, exact bool) positions {
	p := positions{Exact: exact, Consumers: slices.Collect(maps.Values(pos))}
	slices.SortFunc(p.Consumers, func(a, b position) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Consumer, b.Consumer))
	})
	return p
}

// recordPositions writes p to dir/positionsFile atomically: a temporary
// file, fsynced, renamed over the old one, and the directory fsynced.
func recordPositions(dir string, p positions) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, positionsFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, positionsFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readPositions reads dir/positionsFile; none there is no error.
func readPositions(dir string) (*positions, error) {
	data, err := os.ReadFile(filepath.Join(dir, positionsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p positions
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, positionsFile), err)
	}
	return &p, nil
}

// positionReset is a consumer found elsewhere than where the last clean
// stop left it.
type positionReset struct{ stream, consumer string }

// checkPositions compares the consumers of the freshly started srv with
// the record of the last clean stop, logs a warning for each one that is
// missing or moved, and returns them.
//
// Only a record from a clean stop is compared (the caller passes nil
// otherwise): after a crash the record is older than the consumers'
// positions, and while the process ran a group may have been legitimately
// recreated or moved (restartAtAckFloor, an operator's `nats consumer rm`),
// which would look like damage. After a clean stop nothing moves a
// consumer until the next start, so a consumer missing, or behind its
// record, lost its state on disk. Further on than its record, past records
// the stream still holds, is damage too when the record is exact (no
// listener); with a listener another client may have acknowledged records
// between the record and the shutdown, so that is not reported, nor is a
// consumer moved up past records that aged out (bus.retention) while
// sluice was stopped. A crash is left to nats-server's own rebuild
// warnings (NewEmbedded), and loses at most the last moments of
// consumer state (duplicates).
func checkPositions(log *slog.Logger, srv *server.Server, store string, rec *positions) ([]positionReset, error) {
	if rec == nil || len(rec.Consumers) == 0 {
		return nil, nil
	}
	now, err := consumerPositions(srv)
	if err != nil {
		return nil, err
	}
	var resets []positionReset
	for _, r := range rec.Consumers {
		dir := filepath.Join(store, r.Account, "streams", r.Stream, "obs", r.Consumer)
		cur, ok := now[[3]string{r.Account, r.Stream, r.Consumer}]
		switch {
		case !ok:
			log.Warn("nats: embedded: a group's consumer is gone at start: nats-server lost it (its directory under the store was removed or damaged) although sluice stopped cleanly. "+
				"The group's next member creates it again at its configured start: every record the stream retains is delivered again (duplicates), "+
				"or with start latest the records after the recorded position are skipped (loss)",
				"stream", r.Stream, "consumer", r.Consumer, "path", dir,
				"recorded_ack_floor", r.AckFloor, "recorded_delivered", r.Delivered)
		case cur.AckFloor < r.AckFloor:
			log.Warn("nats: embedded: a group's position went back at start: nats-server lost or misread its consumer state (o.dat) although sluice stopped cleanly. "+
				"Records committed before are delivered again (duplicates)",
				"stream", r.Stream, "consumer", r.Consumer, "path", filepath.Join(dir, "o.dat"),
				"recorded_ack_floor", r.AckFloor, "recorded_delivered", r.Delivered,
				"ack_floor", cur.AckFloor, "delivered", cur.Delivered,
				"delivered_again_from", cur.AckFloor+1, "delivered_again_to", r.AckFloor)
		case rec.Exact && cur.AckFloor > r.AckFloor && cur.AckFloor >= cur.first:
			// Beyond records that still exist: not retention (records
			// aged out while sluice was stopped move the consumer up to
			// the first one left, below it).
			log.Warn("nats: embedded: a group's position went forward at start: nats-server misread its consumer state (o.dat) although sluice stopped cleanly. "+
				"Records not yet committed are skipped (loss)",
				"stream", r.Stream, "consumer", r.Consumer, "path", filepath.Join(dir, "o.dat"),
				"recorded_ack_floor", r.AckFloor, "recorded_delivered", r.Delivered,
				"ack_floor", cur.AckFloor, "delivered", cur.Delivered,
				"skipped_from", max(r.AckFloor+1, cur.first), "skipped_to", cur.AckFloor)
		default:
			continue
		}
		resets = append(resets, positionReset{r.Stream, r.Consumer})
	}
	return resets, nil
}

// consumerLoadError is nats-server's warning that it could not load a
// consumer at start (server/jetstream.go: "Error adding consumer '%s > %s
// > %s': %v", account, stream, consumer, error).
type consumerLoadError struct{ account, stream, consumer, err string }

func parseConsumerLoadError(msg string) (consumerLoadError, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(msg), "Error adding consumer '")
	if !ok {
		return consumerLoadError{}, false
	}
	names, reason, ok := strings.Cut(rest, "': ")
	if !ok {
		return consumerLoadError{}, false
	}
	parts := strings.Split(names, " > ")
	if len(parts) != 3 {
		return consumerLoadError{}, false
	}
	return consumerLoadError{parts[0], parts[1], parts[2], reason}, true
}

// unloadable is the error of NewEmbedded for consumers nats-server could
// not load.
func unloadable(store string, errs []consumerLoadError) error {
	var msgs []string
	for _, e := range errs {
		dir := filepath.Join(store, e.account, "streams", e.stream, "obs", e.consumer)
		msgs = append(msgs, fmt.Sprintf("group consumer %s of stream %s (%s): %s", e.consumer, e.stream, dir, e.err))
	}
	return fmt.Errorf("nats: embedded: nats-server cannot load the state of %s; "+
		"the group cannot consume until it is repaired: restore the directory from a copy, "+
		"or move it out of the store to let the group start over at its configured start (records delivered again, or with start latest skipped)",
		strings.Join(msgs, "; "))
}
