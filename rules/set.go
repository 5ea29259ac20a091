package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/vm"
	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// Set is a loaded, compiled rule set, safe for concurrent use. Its rules
// do not change once loaded; what changes is the state of top_k (per call
// site and tenant, updated between batches: see Evaluator.BeginBatch) and
// the counters of Stats.
type Set struct {
	version  string
	files    []string
	all      []*Rule
	bySignal [len(otlpwire.Signals)][]*Rule
	pool     sync.Pool // of *Evaluator, for Apply
	merges   []MergeSpec
	limits   []LimitSpec
}

// Rule is one compiled rule. Its exported fields are read-only.
type Rule struct {
	Name    string
	Signal  otlpwire.Signal
	File    string // as given to Load or Parse
	Line    int    // line of the rule's name
	When    string // the condition's source; "" means always
	OnError OnError

	col           int         // column of the rule's name
	index         int         // position in the set
	when          *vm.Program // nil: always
	deps          Deps
	fieldReads    []string // item fields its expressions read (ReadsFields)
	impure        bool     // some expression calls now()
	attrKeys      []string // attribute keys its expressions read by name
	attrAll       bool     // some expression reads the attributes otherwise
	dropUnmatched bool     // keep: true
	actions       []action
	stats         ruleCounters
	merge         *MergeSpec // its aggregate block
	fileMerge     *MergeSpec // its file's merge block
	noMerge       bool       // its file says merge: none
	limit         *LimitSpec // its limit action
	// mergeIdx, limitIdx: the Mark of the points the rule changes or
	// matches (see Set.Merges, Set.Limits).
	mergeIdx, limitIdx uint16
}

// OnError is what happens to an item when one of a rule's expressions
// fails on it.
type OnError uint8

const (
	OnErrorSkip OnError = iota // the rule does nothing to the item (default)
	OnErrorDrop                // the item is dropped
)

func (o OnError) String() string {
	if o == OnErrorDrop {
		return "drop"
	}
	return "skip"
}

// DependsOn reports what the rule's condition reads. A rule without a
// condition depends on nothing.
func (r *Rule) DependsOn() Deps { return r.deps }

// Load reads every *.yaml and *.yml file of dir (not its subdirectories,
// nor files whose name starts with a dot) in name order. Errors name the
// files as dir joined with the file name. On error it returns Errors,
// with every problem found.
func Load(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var files []ruleFile
	for _, e := range entries {
		if !isRuleFile(e) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		files = append(files, ruleFile{shown: filepath.Join(dir, e.Name()), base: e.Name(), data: data})
	}
	return build(files)
}

// LoadFS is Load for the root directory of fsys; errors name files by
// their name in fsys.
func LoadFS(fsys fs.FS) (*Set, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var files []ruleFile
	for _, e := range entries {
		if !isRuleFile(e) {
			continue
		}
		data, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		files = append(files, ruleFile{shown: e.Name(), base: e.Name(), data: data})
	}
	return build(files)
}

// Parse builds a set from file contents keyed by file name, in name order.
// All names are taken as rule files.
func Parse(files map[string][]byte) (*Set, error) {
	var fs []ruleFile
	for name, data := range files {
		fs = append(fs, ruleFile{shown: name, base: name, data: data})
	}
	return build(fs)
}

func isRuleFile(e fs.DirEntry) bool {
	name := e.Name()
	ext := path.Ext(name)
	return !e.IsDir() && !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

type ruleFile struct {
	shown, base string
	data        []byte
}

func build(files []ruleFile) (*Set, error) {
	slices.SortFunc(files, func(a, b ruleFile) int { return strings.Compare(a.base, b.base) })
	s := &Set{}
	c := newCompiler()
	var errs Errors
	first := map[string]*Rule{}
	h := sha256.New()
	for _, f := range files {
		s.files = append(s.files, f.shown)
		h.Write([]byte(f.base))
		h.Write([]byte{0})
		h.Write([]byte(strconv.Itoa(len(f.data))))
		h.Write([]byte{0})
		h.Write(f.data)

		d := &fileDecoder{name: f.shown, c: c}
		for _, r := range d.decode(f.data) {
			if r.Name != "" {
				if prev, ok := first[r.Name]; ok {
					d.errs = append(d.errs, &Error{File: r.File, Line: r.Line, Column: r.col, Rule: r.Name,
						Msg: fmt.Sprintf("duplicate name (first at %s:%d)", prev.File, prev.Line)})
					continue
				}
				first[r.Name] = r
			}
			r.index = len(s.all)
			s.all = append(s.all, r)
			s.bySignal[r.Signal] = append(s.bySignal[r.Signal], r)
		}
		d.sortErrors()
		errs = append(errs, d.errs...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	s.version = hex.EncodeToString(h.Sum(nil))[:12]
	s.indexMerges()
	s.pool.New = func() any { return s.NewEvaluator() }
	return s, nil
}

// Version identifies the set: a short hex SHA-256 of its file names and
// contents. It changes when any rule file is added, removed, renamed or
// edited, and not when the directory moves.
func (s *Set) Version() string { return s.version }

// Files lists the rule files in the order their rules apply.
func (s *Set) Files() []string { return s.files }

// Rules lists the rules of sig in the order they apply.
func (s *Set) Rules(sig otlpwire.Signal) []*Rule {
	if !sig.Valid() {
		return nil
	}
	return s.bySignal[sig]
}

// All lists every rule in file order.
func (s *Set) All() []*Rule { return s.all }

// Len is the number of rules.
func (s *Set) Len() int { return len(s.all) }

// ruleCounters are a rule's totals, added to by Evaluator.Flush.
type ruleCounters struct {
	matched, dropped, changed, errors, evalNanos atomic.Uint64
}

// RuleStats are the totals of one rule since the set was loaded.
type RuleStats struct {
	Rule      string
	Signal    otlpwire.Signal
	File      string
	Matched   uint64 // items its condition matched
	Dropped   uint64 // items it dropped (drop, keep, sample or on_error: drop)
	Changed   uint64 // items it changed
	Errors    uint64 // items on which an expression failed
	EvalNanos uint64 // time spent in the rule (condition and actions)
}

// Stats returns the totals of every rule, in file order. Counts of an
// Evaluator are included once it has been flushed.
func (s *Set) Stats() []RuleStats {
	out := make([]RuleStats, len(s.all))
	for i, r := range s.all {
		out[i] = RuleStats{
			Rule: r.Name, Signal: r.Signal, File: r.File,
			Matched:   r.stats.matched.Load(),
			Dropped:   r.stats.dropped.Load(),
			Changed:   r.stats.changed.Load(),
			Errors:    r.stats.errors.Load(),
			EvalNanos: r.stats.evalNanos.Load(),
		}
	}
	return out
}
