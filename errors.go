package pathstats

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes of the external contract (DESIGN §5).
const (
	EInvalidParameter     = "INVALID_PARAMETER"
	EInvalidBody          = "INVALID_BODY"
	EInvalidPercentage    = "INVALID_PERCENTAGE"
	EUnauthorized         = "UNAUTHORIZED"
	ENotFound             = "NOT_FOUND"
	EMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	EConflict             = "CONFLICT"
	EIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	EGone                 = "GONE"
	EPreconditionFailed   = "PRECONDITION_FAILED"
	EPayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	EUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	EUnavailable          = "UNAVAILABLE"
	EInternal             = "INTERNAL"
)

var codeStatus = map[string]int{
	EInvalidParameter:     http.StatusBadRequest,
	EInvalidBody:          http.StatusBadRequest,
	EInvalidPercentage:    http.StatusBadRequest,
	EUnauthorized:         http.StatusUnauthorized,
	ENotFound:             http.StatusNotFound,
	EMethodNotAllowed:     http.StatusMethodNotAllowed,
	EConflict:             http.StatusConflict,
	EIdempotencyKeyReused: http.StatusUnprocessableEntity,
	EGone:                 http.StatusGone,
	EPreconditionFailed:   http.StatusPreconditionFailed,
	EPayloadTooLarge:      http.StatusRequestEntityTooLarge,
	EUnsupportedMediaType: http.StatusUnsupportedMediaType,
	EUnavailable:          http.StatusServiceUnavailable,
	EInternal:             http.StatusInternalServerError,
}

// Error is an application error with a contract code and a message safe to
// show to clients. Details, when set, are returned with it (for example the
// list of invalid events).
type Error struct {
	Code    string
	Message string
	Details any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, or EInternal when err is not an *Error.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-safe message of err; internal errors get a
// generic text so no internals leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// HTTPStatus maps an error code to its HTTP status.
func HTTPStatus(code string) int {
	if s, ok := codeStatus[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// ErrUnavailable is wrapped by backends when the service cannot be reached.
var ErrUnavailable = errors.New("backend unavailable")
