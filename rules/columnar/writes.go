package columnar

import (
	"github.com/sluice-dev/sluice/rules"
)

// writesResource reports whether r may edit resource attributes (set,
// rename, delete or keep_keys on resource[...]).
func writesResource(r *rules.Rule) bool { return r.Writes().Resource }
