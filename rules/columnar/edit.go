package columnar

// The attribute edits of a patch are compiled once, when the rules ran on
// a row (recordPatch), and then written to every row that shares the
// patch (the rows the memo replays it for): the entries kept from the
// input are runs of positions, copied in bulk (rawAttrs.copyEntries), and
// each value a rule produced is encoded to its AnyValue fields once
// (kv.enc), not per row (an array or map value is a protobuf encoding).

// encoded is a value a rule produced as the AnyValue fields it is written
// as (see encodeValue).
type encoded struct {
	typ uint8
	b   bool
	s   string
	i   int64
	d   float64
	by  []byte
}

func encode(v any) encoded {
	var e encoded
	e.typ, e.s, e.i, e.d, e.b, e.by = encodeValue(v)
	return e
}

// putRow appends a rewritten row: kvs of the patch, whose entries copied
// from the input are base away from the row's (patchBase). Consecutive
// input entries are copied as one run.
func (w *rawAttrs) putRow(c *mapCols, kvs []kv, base int32) {
	for k := 0; k < len(kvs); {
		e := &kvs[k]
		if e.orig < 0 {
			v := &e.enc
			w.put(e.key, v.typ, v.s, v.i, v.d, v.b, v.by)
			k++
			continue
		}
		j0 := int(e.orig + base)
		k++
		j1 := j0 + 1
		for k < len(kvs) && kvs[k].orig >= 0 && int(kvs[k].orig+base) == j1 {
			j1++
			k++
		}
		w.copyEntries(c, j0, j1)
	}
	w.endRow(true)
}
