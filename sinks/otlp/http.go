package otlp

import (
	"bytes"
	"context"
	"errors"
	"strconv"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-dev/sluice/internal/otlpwire"
	"github.com/sluice-dev/sluice/sinks/httpsink"
	"github.com/sluice-dev/sluice/sinks/sinkmetrics"
)

type httpExporter struct {
	clients [len(otlpwire.Signals)]*httpsink.Client
	gzip    bool
	metrics sinkmetrics.Sink
	buf     bytes.Buffer
	zw      *gzip.Writer
}

func newHTTP(cfg Config, m sinkmetrics.Sink) (*httpExporter, error) {
	e := &httpExporter{gzip: cfg.Compression != "none", metrics: m}
	for _, sig := range otlpwire.Signals {
		c := cfg.Config
		c.URL = httpURL(cfg.URL, sig)
		cl, err := httpsink.New(c, m)
		if err != nil {
			return nil, err
		}
		e.clients[sig] = cl
	}
	return e, nil
}

// export posts body and reads the partial success of the answer.
func (e *httpExporter) export(ctx context.Context, sig otlpwire.Signal, tenant string, body []byte) (int64, string, error) {
	req := httpsink.Request{Body: body, ContentType: "application/x-protobuf", Tenant: tenant}
	if e.gzip {
		e.buf.Reset()
		if e.zw == nil {
			e.zw = gzip.NewWriter(&e.buf)
		} else {
			e.zw.Reset(&e.buf)
		}
		e.zw.Write(body)
		e.zw.Close()
		req.Body, req.ContentEncoding = e.buf.Bytes(), "gzip"
	}
	answer, err := e.clients[sig].PostForAnswer(ctx, req)
	var he *httpsink.Error
	code := "200"
	if errors.As(err, &he) {
		code = "error"
		if he.Status != 0 {
			code = strconv.Itoa(he.Status)
		}
	}
	e.metrics.Requests(code).Inc()
	if err == nil {
		return partialSuccess(sig, answer)
	}
	if httpsink.IsRejected(err) { // 401, 403, 404, 405 are retried (httpsink)
		return 0, "", &permanent{err}
	}
	return 0, "", err
}

func (e *httpExporter) close() error { return nil }
