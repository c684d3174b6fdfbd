// Package jsonread is a strict, allocation-light reader of one JSON text,
// for the hot decoding paths of the inference client (a chat completion is
// decoded on every call).
//
// It reads values in the order they appear and makes its caller name what it
// expects next, so decoding needs no reflection and no intermediate values.
// It is deliberately narrow: anything it does not handle the way
// encoding/json would (an escaped object key, a number where an integer is
// wanted, very deep nesting) makes it fail, and its caller then decodes the
// same bytes with encoding/json. Failing is always safe; succeeding must give
// exactly what encoding/json gives.
//
// Errors are sticky: after the first problem every method returns zero
// values and OK reports false, so a caller checks once at the end.
package jsonread

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth bounds the nesting Skip follows; deeper values make the reader
// fail (encoding/json allows 10,000 and then decides).
const maxDepth = 512

// Reader reads one JSON text. Its zero value reads nothing; Reset gives it
// data.
type Reader struct {
	data []byte
	pos  int
	bad  bool
	// open is true right after '{' or '[', where a comma may not come.
	open bool
	// scratch holds unescaped string bytes.
	scratch []byte
}

// Reset makes r read data from the start.
func (r *Reader) Reset(data []byte) {
	*r = Reader{data: data, scratch: r.scratch[:0]}
}

// OK reports whether everything read so far was well-formed and as
// expected.
func (r *Reader) OK() bool { return !r.bad }

// Fail marks the text as not what the caller can decode.
func (r *Reader) Fail() { r.bad = true }

// Kind is the kind of the next value.
type Kind byte

// The kinds of value; Invalid when the next byte cannot start one.
const (
	Invalid Kind = iota
	Object
	Array
	String
	Number
	Bool
	Null
)

// Peek returns the kind of the next value without reading it.
func (r *Reader) Peek() Kind {
	if r.bad {
		return Invalid
	}
	r.skipSpace()
	if r.pos >= len(r.data) {
		return Invalid
	}
	switch c := r.data[r.pos]; {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == '-' || '0' <= c && c <= '9':
		return Number
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	}
	return Invalid
}

// Null reads a null when one comes next and reports whether it did.
func (r *Reader) Null() bool {
	if r.Peek() != Null {
		return false
	}
	r.literal("null")
	return !r.bad
}

// Object reads the '{' that starts an object; More and Key then walk its
// members.
func (r *Reader) Object() bool { return r.begin('{') }

// Array reads the '[' that starts an array; More then walks its elements.
func (r *Reader) Array() bool { return r.begin('[') }

func (r *Reader) begin(c byte) bool {
	if r.bad {
		return false
	}
	r.skipSpace()
	if r.pos >= len(r.data) || r.data[r.pos] != c {
		r.bad = true
		return false
	}
	r.pos++
	r.open = true
	return true
}

// More reports whether the object or array being walked has another
// member, reading the comma before it or the close (closer is '}' or ']')
// after the last.
func (r *Reader) More(closer byte) bool {
	if r.bad {
		return false
	}
	open := r.open
	r.open = false
	r.skipSpace()
	if r.pos >= len(r.data) {
		r.bad = true
		return false
	}
	switch r.data[r.pos] {
	case closer:
		r.pos++
		return false
	case ',':
		if open {
			r.bad = true
			return false
		}
		r.pos++
		return true
	}
	if !open {
		r.bad = true
		return false
	}
	return true
}

// Key reads a member's name and the colon after it. The name is returned
// as it appears; a name with an escape sequence makes the reader fail, as
// encoding/json would match it only after unescaping. The bytes are valid
// until the next call.
func (r *Reader) Key() []byte {
	key, unusual := r.rawString()
	if unusual&escaped != 0 {
		r.bad = true
	}
	r.skipSpace()
	if r.bad || r.pos >= len(r.data) || r.data[r.pos] != ':' {
		r.bad = true
		return nil
	}
	r.pos++
	return key
}

// StringBytes reads a string and returns it unescaped, with invalid UTF-8
// replaced by U+FFFD as encoding/json does. The bytes are valid until the
// next call.
func (r *Reader) StringBytes() []byte {
	raw, unusual := r.rawString()
	if r.bad {
		return nil
	}
	if unusual == 0 || unusual == multiByte && utf8.Valid(raw) {
		return raw
	}
	if cap(r.scratch) < len(raw) {
		// Unescaped text is no longer than its escaped form (but for
		// invalid UTF-8, each byte of which becomes three): one
		// allocation instead of append's doublings.
		r.scratch = make([]byte, 0, len(raw))
	}
	r.scratch = unescape(r.scratch[:0], raw)
	return r.scratch
}

// rawString reads a string and returns the bytes between its quotes, and
// what they hold beyond printable ASCII.
func (r *Reader) rawString() (raw []byte, unusual int) {
	if r.Peek() != String {
		r.bad = true
		return nil, 0
	}
	start := r.pos + 1
	end, unusual := r.scanString()
	if r.bad {
		return nil, 0
	}
	return r.data[start:end], unusual
}

// String reads a string; see StringBytes.
func (r *Reader) String() string { return string(r.StringBytes()) }

// Int64 reads a number that is an integer in int64's range, written without
// a fraction or exponent: what encoding/json accepts for an integer field.
func (r *Reader) Int64() int64 {
	if r.Peek() != Number {
		r.bad = true
		return 0
	}
	start := r.pos
	end, integer := r.scanNumber()
	if r.bad || !integer {
		r.bad = true
		return 0
	}
	digits := r.data[start:end]
	neg := digits[0] == '-'
	if neg {
		digits = digits[1:]
	}
	// Accumulate as a negative number, whose range is one larger.
	var n int64
	const minInt64 = -1 << 63
	for _, c := range digits {
		d := int64(c - '0')
		if n < minInt64/10 || n*10 < minInt64+d {
			r.bad = true
			return 0
		}
		n = n*10 - d
	}
	if !neg {
		if n == minInt64 {
			r.bad = true
			return 0
		}
		n = -n
	}
	return n
}

// Float32 reads a number as the float32 nearest to it, as encoding/json
// decodes a number into a float32 field. A number out of float32's range
// makes the reader fail.
func (r *Reader) Float32() float32 {
	if r.Peek() != Number {
		r.bad = true
		return 0
	}
	start := r.pos
	end, _ := r.scanNumber()
	if r.bad {
		return 0
	}
	text := r.data[start:end]
	// The text is parsed in place: a string of the same bytes, never
	// kept, costs no copy per number.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(text), len(text)), 32)
	if err != nil {
		r.bad = true
		return 0
	}
	return float32(f)
}

// Skip reads one value of any kind, checking that it is well-formed, and
// returns its bytes as they appear.
func (r *Reader) Skip() []byte {
	r.skipSpace()
	start := r.pos
	r.skip(0)
	if r.bad {
		return nil
	}
	return r.data[start:r.pos]
}

func (r *Reader) skip(depth int) {
	if depth > maxDepth {
		r.bad = true
		return
	}
	switch r.Peek() {
	case Object:
		r.Object()
		for r.More('}') {
			r.Key()
			r.skip(depth + 1)
		}
	case Array:
		r.Array()
		for r.More(']') {
			r.skip(depth + 1)
		}
	case String:
		r.scanString()
	case Number:
		r.scanNumber()
	case Bool:
		if r.data[r.pos] == 't' {
			r.literal("true")
		} else {
			r.literal("false")
		}
	case Null:
		r.literal("null")
	default:
		r.bad = true
	}
}

// End reports whether only white space is left after the value read, as a
// whole JSON text requires, and everything read was well-formed.
func (r *Reader) End() bool {
	r.skipSpace()
	if r.pos != len(r.data) {
		r.bad = true
	}
	return !r.bad
}

func (r *Reader) skipSpace() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *Reader) literal(word string) {
	if len(r.data)-r.pos < len(word) || string(r.data[r.pos:r.pos+len(word)]) != word {
		r.bad = true
		return
	}
	r.pos += len(word)
}

// plain marks the bytes a string may hold as they are: not a quote, a
// backslash, a control character, or the start of a multi-byte sequence.
var plain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// What a string holds beyond printable ASCII.
const (
	escaped   = 1 << iota // escape sequences
	multiByte             // bytes of multi-byte sequences, maybe invalid
)

// scanString reads a string starting at its opening quote and returns the
// index of its closing quote, and what it holds beyond printable ASCII.
// Validation is encoding/json's scanner's: no control characters, and only
// the escapes \" \\ \/ \b \f \n \r \t and \uXXXX.
func (r *Reader) scanString() (end int, unusual int) {
	i := r.pos + 1
	data := r.data
	for i < len(data) {
		c := data[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			r.pos = i + 1
			return i, unusual
		case c == '\\':
			unusual |= escaped
			if i+1 >= len(data) {
				r.bad = true
				return 0, 0
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || hex4(data[i+2:i+6]) < 0 {
					r.bad = true
					return 0, 0
				}
				i += 6
			default:
				r.bad = true
				return 0, 0
			}
		case c < ' ':
			r.bad = true
			return 0, 0
		default: // a byte of a multi-byte sequence, checked when unescaped
			unusual |= multiByte
			i++
		}
	}
	r.bad = true
	return 0, 0
}

// scanNumber reads a number and reports whether it had neither a fraction
// nor an exponent.
func (r *Reader) scanNumber() (end int, integer bool) {
	data := r.data
	i := r.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	default:
		r.bad = true
		return 0, false
	}
	integer = true
	if i < len(data) && data[i] == '.' {
		integer = false
		i++
		if !digitsAt(data, &i) {
			r.bad = true
			return 0, false
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		integer = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if !digitsAt(data, &i) {
			r.bad = true
			return 0, false
		}
	}
	r.pos = i
	return i, integer
}

// digitsAt advances *i past one or more digits and reports whether there
// was at least one.
func digitsAt(data []byte, i *int) bool {
	start := *i
	for *i < len(data) && '0' <= data[*i] && data[*i] <= '9' {
		*i++
	}
	return *i > start
}

// hex4 is the value of four hex digits, or -1.
func hex4(s []byte) rune {
	var v rune
	for _, c := range s {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

// unescape appends the string raw (the bytes between the quotes, already
// validated by scanString) to dst as encoding/json decodes it: escapes
// resolved, a lone or broken surrogate and invalid UTF-8 as U+FFFD.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(raw[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(rr) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(raw[i+2:i+6])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // " \ /
				dst = append(dst, raw[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			// Copy the run of plain ASCII up to the next escape or
			// multi-byte sequence at once.
			j := i + 1
			for j < len(raw) && raw[j] < utf8.RuneSelf && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
		default:
			rr, size := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, rr)
			i += size
		}
	}
	return dst
}
