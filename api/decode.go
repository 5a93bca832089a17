package api

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pathstats/pathstats"
)

// Ingest limits (DESIGN §5).
const (
	MaxEvents         = 10_000  // events per request
	MaxBodyBytes      = 5 << 20 // bytes per request body
	MaxEventPathBytes = 8192    // bytes of an event's raw path
	maxMethodLen      = 16
	maxProxyIDLen     = 64
	maxFutureSkew     = 5 * time.Minute
	maxListedProblems = 100
)

// errTooManyEvents is returned when a body holds more than MaxEvents.
var errTooManyEvents = errors.New("too many events")

// EventError describes one invalid field of one event of a request.
type EventError struct {
	Index  int    `json:"index"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`

	syntax bool // malformed JSON rather than an invalid value
}

// problems collects the invalid events of a request, listing the first few.
type problems struct {
	list    []EventError
	total   int // problems found
	events  int // distinct invalid events
	lastIdx int
}

func (p *problems) reset() {
	clear(p.list)
	*p = problems{list: p.list[:0], lastIdx: -1}
}

func (p *problems) add(e EventError) {
	p.total++
	if e.Index != p.lastIdx {
		p.events++
		p.lastIdx = e.Index
	}
	if len(p.list) < maxListedProblems {
		p.list = append(p.list, e)
	}
}

// rawEvent holds the scanned fields of one event before validation.
type rawEvent struct {
	timestamp, path, method, status, latency, proxyID, clientIP rawValue
}

// field returns the slot of a known key, or nil for a key to ignore.
func (e *rawEvent) field(key []byte) *rawValue {
	switch string(key) {
	case "timestamp":
		return &e.timestamp
	case "path":
		return &e.path
	case "method":
		return &e.method
	case "status":
		return &e.status
	case "latencyMs":
		return &e.latency
	case "proxyId":
		return &e.proxyID
	case "clientIp":
		return &e.clientIP
	}
	return nil
}

// object scans the event object at the current position ('{').
func (s *scanner) object(e *rawEvent) error {
	s.pos++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.unexpected("a string key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.colon(); err != nil {
			return err
		}
		if slot := e.field(key); slot != nil {
			if *slot, err = s.scalar(); err != nil {
				if se, ok := err.(*syntaxError); ok {
					se.field = string(key)
				}
				return err
			}
		} else {
			err = s.skip(2)
		}
		if err != nil {
			return err
		}
		end, err := s.next('}')
		if end || err != nil {
			return err
		}
	}
}

// decoder turns an ingest body into validated events. It is reused through
// a pool: the interned strings survive, everything else is reset.
type decoder struct {
	check  checker
	probs  problems
	events []pathstats.Event
	n      int // events seen, valid or not
}

func (d *decoder) reset(now time.Time, retention time.Duration) {
	d.check.reset(now, retention)
	d.probs.reset()
	clear(d.events)
	d.events = d.events[:0]
	d.n = 0
}

// decode reads body as NDJSON or as a JSON array. It fails with
// errTooManyEvents or a *pathstats.Error for a body-level problem; invalid
// events are collected in d.probs.
func (d *decoder) decode(body []byte, ndjson bool) error {
	if ndjson {
		return d.ndjson(body)
	}
	return d.array(body)
}

func (d *decoder) ndjson(body []byte) error {
	for len(body) > 0 {
		var line []byte
		line, body, _ = bytes.Cut(body, []byte{'\n'})
		s := scanner{data: line}
		s.ws()
		if s.eof() {
			continue
		}
		if d.n == MaxEvents {
			return errTooManyEvents
		}
		idx := d.n
		d.n++
		if err := d.line(&s, idx); err != nil {
			d.probs.add(malformed(idx, err))
		}
	}
	return nil
}

// line decodes the single value of one NDJSON line.
func (d *decoder) line(s *scanner, idx int) error {
	var raw rawEvent
	isObject := s.peek() == '{'
	var err error
	if isObject {
		err = s.object(&raw)
	} else {
		err = s.skip(1)
	}
	if err != nil {
		return err
	}
	if s.ws(); !s.eof() {
		return s.unexpected("end of line")
	}
	if !isObject {
		d.probs.add(EventError{Index: idx, Reason: "event must be a JSON object"})
		return nil
	}
	d.add(idx, &raw)
	return nil
}

func (d *decoder) array(body []byte) error {
	s := scanner{data: body}
	s.ws()
	if s.eof() {
		return nil
	}
	if s.peek() != '[' {
		return pathstats.Errorf(pathstats.EInvalidBody, "body must be a JSON array of events")
	}
	s.pos++
	if s.ws(); s.peek() == ']' {
		s.pos++
	} else if err := d.elements(&s); err != nil {
		return err
	}
	if s.ws(); !s.eof() && d.probs.total == 0 {
		return pathstats.Errorf(pathstats.EInvalidBody, "unexpected data after the JSON array at offset %d", s.pos)
	}
	return nil
}

// elements reads the events of a JSON array up to and including ']'. A syntax
// error is recorded against the event it happened in and ends the scan.
func (d *decoder) elements(s *scanner) error {
	for {
		if d.n == MaxEvents {
			return errTooManyEvents
		}
		idx := d.n
		d.n++
		if err := d.element(s, idx); err != nil {
			d.probs.add(malformed(idx, err))
			return nil
		}
		end, err := s.next(']')
		if err != nil {
			d.probs.add(malformed(idx, err))
			return nil
		}
		if end {
			return nil
		}
	}
}

func (d *decoder) element(s *scanner, idx int) error {
	if s.peek() != '{' {
		if err := s.skip(2); err != nil {
			return err
		}
		d.probs.add(EventError{Index: idx, Reason: "event must be a JSON object"})
		return nil
	}
	var raw rawEvent
	if err := s.object(&raw); err != nil {
		return err
	}
	d.add(idx, &raw)
	return nil
}

// add validates a scanned event and keeps it when valid.
func (d *decoder) add(idx int, raw *rawEvent) {
	var ev pathstats.Event
	if d.check.event(raw, idx, &ev, &d.probs) {
		d.events = append(d.events, ev)
	}
}

// malformed is the problem of an event that is not valid JSON.
func malformed(idx int, err error) EventError {
	e := EventError{Index: idx, Reason: "malformed JSON: " + err.Error(), syntax: true}
	if se, ok := err.(*syntaxError); ok {
		e.Field = se.field
		if se.msg == errInvalidUTF8 {
			e.Reason = err.Error()
		}
	}
	return e
}

// invalidError is the 400 answer for a request with invalid events.
func (d *decoder) invalidError() error {
	p := &d.probs
	msg := fmt.Sprintf("%d of %d events are invalid; nothing was accepted", p.events, d.n)
	if p.total > len(p.list) {
		msg += fmt.Sprintf(" (first %d of %d problems listed)", len(p.list), p.total)
	}
	return &pathstats.Error{Code: pathstats.EInvalidBody, Message: msg, Details: slices.Clone(p.list)}
}
