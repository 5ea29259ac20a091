package rules

import (
	"slices"

	"github.com/sluice-dev/sluice/internal/otlpwire"
)

// KeepsResources reports whether no metrics rule of the set can change a
// resource: no set, rename, delete or keep_keys of resource[...], and no
// aggregate with by or without (which edit the resource's attributes as
// well as the point's). Every merged series then has the resource of each
// of its inputs, so the points a series merges all come from where their
// resource was sent: when the raw topic holds each resource in one
// partition, a worker can merge them there (worker.Config.LocalMerge)
// rather than route them through the aggregation topic.
func (s *Set) KeepsResources() bool {
	for _, r := range s.Rules(otlpwire.Metrics) {
		if slices.ContainsFunc(r.actions, editsResource) {
			return false
		}
	}
	return true
}

// editsResource reports whether a can change an item's resource; an
// action it does not know can.
func editsResource(a action) bool {
	onResource := func(t target) bool { return t.kind == targetResource }
	switch a := a.(type) {
	case *setAction:
		return slices.ContainsFunc(a.targets, onResource)
	case *deleteAction:
		return slices.ContainsFunc(a.targets, onResource)
	case *renameAction:
		return slices.ContainsFunc(a.from, onResource) || slices.ContainsFunc(a.to, onResource)
	case *keepKeysAction:
		return a.resource != nil
	case *aggregateAction:
		return a.without != nil || a.by != nil
	case dropAction, limitAction, *sampleAction:
		return false
	}
	return true
}
