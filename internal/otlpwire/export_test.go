package otlpwire

// The tests are in package otlpwire_test, so that they can use
// internal/otlptest (which imports otlpwire); this file lends them what they
// check against inside the package.

// RawItems lists every item of body as the scanner sees it: the raw bytes of
// the headers around the item (request, resource, scope, and for metrics
// the metric, the data field's number and the data message), then the
// item's own bytes.
func RawItems(sig Signal, body []byte) ([][]string, error) {
	var sc scanner
	sc.reset(sig, body, true, KeyNone, 0)
	if err := sc.request(); err != nil {
		return nil, err
	}
	hdr := func(h hdrRef) string {
		var b []byte
		for _, r := range sc.hdrs[h.lo:h.hi] {
			b = append(b, body[r.off:r.end]...)
		}
		return string(b)
	}
	var out [][]string
	for _, it := range sc.items {
		parts := []string{hdr(sc.reqHdr)}
		si := it.parent
		if sig == Metrics {
			m := &sc.metrics[it.parent]
			parts = append(parts, hdr(m.hdr), string(rune(m.dataNum)), hdr(m.data))
			si = m.parent
		}
		scope := &sc.scopes[si]
		parts = append(parts, hdr(sc.res[scope.parent].hdr), hdr(scope.hdr), string(body[it.off:it.end]))
		out = append(out, parts)
	}
	return out, nil
}
