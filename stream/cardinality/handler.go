package cardinality

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// DefaultTop is the number of metrics and labels Handler reports when the
// request does not say.
const DefaultTop = 20

// Handler serves the Report as JSON on GET (and HEAD): ?tenant= restricts it
// to one tenant (default all), ?top= bounds the metrics per tenant and the
// labels per metric (default DefaultTop, 0 = all). The admin port mounts it
// at /api/v1/cardinality.
func (t *Tracker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		top := DefaultTop
		if s := q.Get("top"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				http.Error(w, "top: want a number >= 0", http.StatusBadRequest)
				return
			}
			top = n
		}
		rep := t.Report(q.Get("tenant"), top, t.now())
		body, err := json.Marshal(rep)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(body, '\n'))
	})
}
