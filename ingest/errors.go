package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluice-dev/sluice/stream"
)

// Errors of Export and the servers. Test with errors.Is / errors.As.
var (
	// ErrOverloaded: the in-flight byte limit is reached. Retryable after
	// Config.RetryAfter.
	ErrOverloaded = errors.New("ingester overloaded: in-flight request bytes at limit")
	// ErrUnavailable: the bus did not acknowledge (unreachable, timed out,
	// closed). Retryable. It also wraps the bus error.
	ErrUnavailable = errors.New("bus unavailable")
	// ErrTooLarge: the request exceeds Config.MaxRequestBytes. Not
	// retryable.
	ErrTooLarge = errors.New("request too large")
	// ErrUnauthenticated: tokens are configured and the request has none
	// of them.
	ErrUnauthenticated = errors.New("missing or invalid bearer token")
	// ErrForbidden: the request names a tenant (X-Scope-OrgID) that its
	// token, or the ingester without tokens, does not let it write as.
	// It also carries a message saying which tenant and why.
	ErrForbidden = errors.New("tenant not allowed")
	// ErrInternal: the bus refused a record the ingester built (too large
	// despite splitting, unknown partition...). Not the client's fault, not
	// retryable as it is.
	ErrInternal = errors.New("internal error")
)

// BadRequestError is a malformed request: not OTLP, bad compression, bad
// tenant. Msg says what and where; sending the request again cannot help.
type BadRequestError struct {
	Msg string
	Err error // the decoder's error (*otlpwire.FormatError, *otlpjson.Error...), if any
}

func (e *BadRequestError) Error() string { return "bad request: " + e.Msg }
func (e *BadRequestError) Unwrap() error { return e.Err }

func badRequest(err error, format string, args ...any) *BadRequestError {
	return &BadRequestError{Msg: fmt.Sprintf(format, args...), Err: err}
}

// IsRetryable reports whether a request that failed with err may succeed if
// sent again unchanged.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrOverloaded) || errors.Is(err, ErrUnavailable) || stream.IsRetryable(err)
}

// produceError maps a Produce error onto the ingester's vocabulary.
func produceError(err error) error {
	switch {
	case stream.IsRetryable(err), errors.Is(err, stream.ErrClosed), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return fmt.Errorf("%w: %w", ErrInternal, err)
	}
}

// errReason is the reason label of sluice_ingest_errors_total for err.
func errReason(err error) string {
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		return "bad_request"
	case errors.Is(err, ErrOverloaded):
		return "overloaded"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrInternal):
		return "internal"
	}
	return "other"
}
