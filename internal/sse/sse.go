// Package sse reads Server-Sent Events as the WHATWG HTML specification
// defines them (section 9.2, "Server-sent events"): lines end in CRLF, LF or
// CR; lines starting with ':' are comments; "data" lines of one event are
// joined with LF; "event" and "id" set the event's type and id; a blank line
// dispatches the event.
//
// One departure from the specification: an "error" event with no data is
// dispatched (with empty Data) rather than dropped, because a server that
// sends a bare "event: error" is reporting a failure that a client must not
// ignore.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventSize bounds one event's data: a single chat chunk can carry
// a long content string, but not without limit.
const DefaultMaxEventSize = 8 << 20

// initialBuffer is the read buffer a reader starts with; it grows, up to
// the event limit, only for longer lines. Chat chunks are a few hundred
// bytes, and a server holding thousands of streams open pays this per
// stream: 4 KiB, as a bufio.Reader's.
const initialBuffer = 4 << 10

// ErrEventTooLarge is returned when one line or one event's data exceeds
// the reader's limit.
var ErrEventTooLarge = errors.New("sse: event too large")

// Event is one dispatched event. Data is valid until the next call to Next.
type Event struct {
	// Type is the "event" field, empty for the default "message".
	Type string
	// ID is the last "id" field seen, as the spec's last event ID.
	ID string
	// Data is the "data" lines joined with LF.
	Data []byte
}

// Reader reads events from a stream.
type Reader struct {
	scan   *bufio.Scanner
	max    int
	data   []byte
	typ    string
	lastID string
}

// NewReader reads events from r, allowing events of up to max bytes of data
// (DefaultMaxEventSize when max <= 0).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxEventSize
	}
	s := bufio.NewScanner(r)
	// A line can be as long as an event's data plus its field name.
	s.Buffer(make([]byte, 0, initialBuffer), max+64)
	s.Split(scanLines)
	return &Reader{scan: s, max: max}
}

// Next returns the next event. It returns io.EOF when the stream ends; an
// event still being built at the end (no blank line after it) is returned
// first, since servers do not always end with one. Other errors are the
// underlying reader's, or ErrEventTooLarge.
func (r *Reader) Next() (Event, error) {
	r.data = r.data[:0]
	r.typ = ""
	hasData := false
	for r.scan.Scan() {
		line := r.scan.Bytes()
		if len(line) == 0 {
			if !hasData && r.typ != "error" {
				r.typ = ""
				continue // a blank line with no data dispatches nothing
			}
			return r.event(), nil
		}
		if line[0] == ':' {
			continue // comment
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				r.data = append(r.data, '\n')
			}
			if len(r.data)+len(value) > r.max {
				return Event{}, fmt.Errorf("%w: more than %d bytes of data", ErrEventTooLarge, r.max)
			}
			r.data = append(r.data, value...)
			hasData = true
		case "event":
			r.typ = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.lastID = string(value)
			}
		}
		// "retry" and unknown fields are ignored, as the spec says.
	}
	if err := r.scan.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Event{}, fmt.Errorf("%w: a line longer than %d bytes", ErrEventTooLarge, r.max)
		}
		return Event{}, err
	}
	if hasData || r.typ == "error" {
		return r.event(), nil
	}
	return Event{}, io.EOF
}

func (r *Reader) event() Event {
	return Event{Type: r.typ, ID: r.lastID, Data: r.data}
}

// scanLines splits on CRLF, LF or a lone CR, without the line ending. A CR
// at the end of the buffered data waits for more, to tell CRLF from CR.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	// IndexByte is vectorised; a lone CR is rare, so it is looked for only
	// before the first LF.
	end := bytes.IndexByte(data, '\n')
	head := data
	if end >= 0 {
		head = data[:end]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		switch {
		case cr+1 < len(data) && data[cr+1] == '\n':
			return cr + 2, data[:cr], nil
		case cr+1 < len(data) || atEOF:
			return cr + 1, data[:cr], nil
		default:
			return 0, nil, nil // need one more byte to tell CRLF from CR
		}
	}
	if end >= 0 {
		return end + 1, data[:end], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
