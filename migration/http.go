package migration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/pathstats/pathstats"
	"github.com/pathstats/pathstats/api"
	"github.com/pathstats/pathstats/internal/inputerr"
)

// Limits of PUT /api/admin/paths/migration-config.
const (
	maxConfigBody  = 1 << 20 // bytes of a PUT body
	maxActorLen    = 64
	maxReasonLen   = 256
	defaultActor   = "admin"
	sourceManual   = "manual"
	headerActor    = "X-Pathstats-Actor"
	headerReason   = "X-Pathstats-Reason"
	fieldPercent   = "newAPIPercentage"
	fieldForceNew  = "forceNewAPIIPs"
	fieldForceOld  = "forceOldAPIIPs"
	fieldCompare   = "enableComparison"
	fieldVersion   = "version"
	fieldUpdatedAt = "updatedAt"
)

// Handlers returns the admin handlers of the migration config, keyed by
// their ServeMux pattern:
//
//	GET /api/admin/paths/migration-config          current config, ETag "<version>"
//	PUT /api/admin/paths/migration-config          merge the body's fields (If-Match honoured)
//	GET /api/admin/paths/migration-config/history  changes, newest first (?before=<id>&limit=<n>)
//
// PUT body: a JSON object with any of newAPIPercentage (number, 0–100, two
// decimals), forceNewAPIIPs and forceOldAPIIPs (arrays of IP or CIDR
// strings) and enableComparison (bool); only the fields present change.
// version and updatedAt are owned by the server and ignored when present (so
// a GET result can be sent back); any other field is INVALID_BODY. The actor
// is the X-Pathstats-Actor header (default "admin"), the reason
// X-Pathstats-Reason; the source is "manual".
func Handlers(s *Store) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /api/admin/paths/migration-config":         http.HandlerFunc(s.serveGet),
		"PUT /api/admin/paths/migration-config":         http.HandlerFunc(s.servePut),
		"GET /api/admin/paths/migration-config/history": http.HandlerFunc(s.serveHistory),
	}
}

// serveGet answers the config read fresh from KV, or the held one when KV
// cannot be read.
func (s *Store) serveGet(w http.ResponseWriter, r *http.Request) {
	c, err := s.refresh(r.Context())
	if err != nil {
		s.log.Warn("read migration config; answering the held one", "err", err)
	}
	writeConfig(w, c)
}

func writeConfig(w http.ResponseWriter, c pathstats.MigrationConfig) {
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(c.Version, 10)))
	api.WriteData(w, http.StatusOK, c)
}

// servePut merges the body's fields into the config.
func (s *Store) servePut(w http.ResponseWriter, r *http.Request) {
	ifMatch, hasIfMatch, err := parseIfMatch(r.Header.Get("If-Match"))
	if err != nil {
		api.WriteError(w, err)
		return
	}
	actor, reason, err := actorReason(r.Header)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	p, err := readPatch(w, r)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	c, err := s.Update(r.Context(), ifMatch, actor, sourceManual, reason, func(c *pathstats.MigrationConfig) error {
		// If-Match: 0 means "only while nothing was ever stored".
		if hasIfMatch && ifMatch == 0 && c.Version != 0 {
			return pathstats.Errorf(pathstats.EPreconditionFailed, "migration config is at version %d, not 0", c.Version)
		}
		p.apply(c)
		return nil
	})
	if err != nil {
		api.WriteError(w, publicError(err))
		return
	}
	writeConfig(w, c)
}

// publicError maps backend failures to UNAVAILABLE; *pathstats.Error passes.
func publicError(err error) error {
	var pe *pathstats.Error
	switch {
	case errors.As(err, &pe):
		return err
	case errors.Is(err, pathstats.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return pathstats.Errorf(pathstats.EUnavailable, "config store unavailable, try again")
	}
	return err
}

// parseIfMatch accepts a version bare (7) or quoted ("7"), optionally weak
// (W/"7"); absent is (0, false).
func parseIfMatch(h string) (uint64, bool, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false, nil
	}
	v := strings.TrimPrefix(h, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || v == "" || v[0] == '+' {
		return 0, false, pathstats.Errorf(pathstats.EInvalidParameter, "If-Match must be a config version, like 7 or \"7\"")
	}
	return n, true, nil
}

// actorReason reads the actor and reason headers.
func actorReason(h http.Header) (string, string, error) {
	actor := strings.TrimSpace(h.Get(headerActor))
	if actor == "" {
		actor = defaultActor
	}
	if len(actor) > maxActorLen || !printable(actor) {
		return "", "", pathstats.Errorf(pathstats.EInvalidParameter, "%s must be at most %d printable characters", headerActor, maxActorLen)
	}
	reason := strings.TrimSpace(h.Get(headerReason))
	if len(reason) > maxReasonLen || !printable(reason) {
		return "", "", pathstats.Errorf(pathstats.EInvalidParameter, "%s must be at most %d printable characters", headerReason, maxReasonLen)
	}
	return actor, reason, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// configPatch holds the fields present in a PUT body.
type configPatch struct {
	percentage *float64
	forceNew   *[]string
	forceOld   *[]string
	compare    *bool
}

func (p configPatch) apply(c *pathstats.MigrationConfig) {
	if p.percentage != nil {
		c.NewAPIPercentage = *p.percentage
	}
	if p.forceNew != nil {
		c.ForceNewAPIIPs = *p.forceNew
	}
	if p.forceOld != nil {
		c.ForceOldAPIIPs = *p.forceOld
	}
	if p.compare != nil {
		c.EnableComparison = *p.compare
	}
}

// readPatch checks the content type and size of the body and decodes it.
// The values are validated here too, so a bad body never reaches KV.
func readPatch(w http.ResponseWriter, r *http.Request) (configPatch, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return configPatch{}, pathstats.Errorf(pathstats.EUnsupportedMediaType, "body must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxConfigBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return configPatch{}, pathstats.Errorf(pathstats.EPayloadTooLarge, "body larger than %d bytes", maxConfigBody)
		}
		return configPatch{}, pathstats.Errorf(pathstats.EInvalidBody, "could not read the body")
	}
	fields, err := decodeObject(body)
	if err != nil {
		return configPatch{}, err
	}
	p, err := decodePatch(fields)
	if err != nil {
		return configPatch{}, err
	}
	var probe pathstats.MigrationConfig
	p.apply(&probe)
	if err := Validate(probe); err != nil {
		return configPatch{}, err
	}
	return p, nil
}

// decodeObject splits a JSON object into its raw fields. A value that is
// not JSON (NaN, Infinity, …) under newAPIPercentage is INVALID_PERCENTAGE;
// anything else malformed, a duplicate field or trailing data is
// INVALID_BODY.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	bad := func(format string, args ...any) error {
		return pathstats.Errorf(pathstats.EInvalidBody, format, args...)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, bad("body must be a JSON object")
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON(err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if key == fieldPercent {
				return nil, pathstats.Errorf(pathstats.EInvalidPercentage, "newAPIPercentage: must be a number between 0 and 100")
			}
			return nil, notJSON(err)
		}
		if _, dup := out[key]; dup {
			return nil, bad("field %s appears twice", inputerr.Quote(key))
		}
		out[key] = raw
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notJSON(err)
	}
	end := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, inputerr.Trailing(body, end)
	}
	return out, nil
}

// notJSON is the INVALID_BODY error of a malformed body, with the offset
// when the decoder knows it.
func notJSON(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return inputerr.JSON(err, nil)
}

// decodePatch types the known fields; an unknown field is INVALID_BODY.
func decodePatch(fields map[string]json.RawMessage) (configPatch, error) {
	var p configPatch
	for key, raw := range fields {
		var err error
		switch key {
		case fieldPercent:
			p.percentage, err = decodePercentage(raw)
		case fieldForceNew:
			p.forceNew, err = decodeList(key, raw)
		case fieldForceOld:
			p.forceOld, err = decodeList(key, raw)
		case fieldCompare:
			var b bool
			if raw[0] != 't' && raw[0] != 'f' || json.Unmarshal(raw, &b) != nil {
				err = pathstats.Errorf(pathstats.EInvalidBody, "enableComparison: must be true or false")
			}
			p.compare = &b
		case fieldVersion, fieldUpdatedAt:
			// Owned by the server; use If-Match for compare-and-set.
		default:
			err = pathstats.Errorf(pathstats.EInvalidBody, "unknown field %s", inputerr.Quote(key))
		}
		if err != nil {
			return configPatch{}, err
		}
	}
	return p, nil
}

// decodePercentage accepts only a JSON number (not a string, not null).
func decodePercentage(raw json.RawMessage) (*float64, error) {
	var f float64
	if c := raw[0]; c != '-' && (c < '0' || c > '9') || json.Unmarshal(raw, &f) != nil {
		return nil, pathstats.Errorf(pathstats.EInvalidPercentage, "newAPIPercentage: must be a number between 0 and 100")
	}
	if _, err := checkPercentage(f); err != nil {
		return nil, err
	}
	return &f, nil
}

// decodeList accepts only an array of strings (not null).
func decodeList(field string, raw json.RawMessage) (*[]string, error) {
	var list []string
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, pathstats.Errorf(pathstats.EInvalidBody, "%s: must be an array of IP or CIDR strings", field)
	}
	if len(list) > MaxListEntries {
		return nil, pathstats.Errorf(pathstats.EInvalidBody, "%s: has %d entries, at most %d allowed", field, len(list), MaxListEntries)
	}
	return &list, nil
}

// errHistoryUnavailable is answered when the Store keeps no history.
var errHistoryUnavailable = fmt.Errorf("no config history: %w", pathstats.ErrUnavailable)
