package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// JSONDecodeError is a structured-output call whose reply could not be
// decoded into the type asked for, even after asking the model once more.
// It keeps both raw replies. It matches [ErrProvider]: the provider answered,
// but not with what was asked, as with any 2xx that is not what was asked
// for; another model or provider may do better.
type JSONDecodeError struct {
	// Raw is the last reply, as the model sent it.
	Raw string
	// FirstRaw is the reply before the re-ask.
	FirstRaw string
	// Err is the decoding error of the last reply.
	Err error
}

// Error says why the reply could not be read; the raw reply is in Raw.
func (e *JSONDecodeError) Error() string {
	return fmt.Sprintf("inference: the reply is not the JSON asked for, even after asking again (%d bytes kept in Raw): %v", len(e.Raw), e.Err)
}

// Is reports whether target is ErrProvider, the kind of this error.
func (e *JSONDecodeError) Is(target error) bool { return target == ErrProvider }

// Unwrap returns the decoding error.
func (e *JSONDecodeError) Unwrap() error { return e.Err }

// ChatJSON asks for a reply in JSON and decodes it into a T. Unless the
// request sets ResponseFormat, it asks with a JSON schema derived from T's
// fields and json tags (a `description:"..."` tag describes a field to the
// model), or for a JSON object when no schema can be derived (T is an
// interface, or has its own JSON encoding).
//
// The reply is read tolerantly: a JSON value alone, inside a ```json fence,
// or after leading prose. It must be the value asked for: null is refused,
// and so is an object that lacks a field the schema requires (every field of
// a struct without omitempty or omitzero, at any depth). When the reply does
// not pass, the model is asked once more, told what was wrong, by the
// candidate that answered (then the candidates after it that have not
// failed); a second failure is a [*JSONDecodeError] that keeps the raw
// replies. The returned ChatResponse is the one the value came from (or the
// last one), and its Attempts list the attempts of both asks.
func ChatJSON[T any](ctx context.Context, c *Client, req ChatRequest, opts ...Option) (T, *ChatResponse, error) {
	var zero T
	if err := c.usable(ctx); err != nil {
		return zero, nil, err
	}
	cfg, err := c.configure(opts)
	if err != nil {
		return zero, nil, err
	}
	schema, _ := jsonSchema(reflect.TypeFor[T](), 0)
	if req.ResponseFormat == nil {
		req.ResponseFormat = responseFormatFor(reflect.TypeFor[T]())
	}
	resp, err := c.Chat(ctx, req, opts...)
	if err != nil {
		return zero, nil, err
	}
	first := resp.Text()
	v, decodeErr := decodeReply[T](first, schema)
	if decodeErr == nil {
		return v, resp, nil
	}

	// Ask once more, showing the model its reply and what was wrong.
	retry := reaskRequest(c, cfg, &req, resp.Attempts)
	retry.Messages = append(slices.Clip(req.Messages), AssistantMessage(first), UserMessage(reaskText(decodeErr)))
	firstAttempts := resp.Attempts
	resp, err = c.Chat(ctx, retry, opts...)
	if err != nil {
		return zero, nil, withFirstAttempts(firstAttempts, err)
	}
	resp.Attempts = append(slices.Clip(firstAttempts), resp.Attempts...)
	v, decodeErr = decodeReply[T](resp.Text(), schema)
	if decodeErr != nil {
		return zero, resp, &JSONDecodeError{Raw: resp.Text(), FirstRaw: first, Err: decodeErr}
	}
	return v, resp, nil
}

// reaskRequest is req sent to the candidate that served the first answer,
// then to the candidates of req's walk that have not failed, so that a
// re-ask neither starts over at a gated model nor loses the walk.
func reaskRequest(c *Client, cfg *callConfig, req *ChatRequest, attempts []Attempt) ChatRequest {
	retry := *req
	if len(attempts) == 0 {
		return retry
	}
	served, rest := reaskWalk(cfg.candidatesOf(req.primary(), req.Fallbacks, nil), attempts)
	retry.Model, retry.Provider, retry.Fallbacks = served.Model, served.Provider, rest
	return retry
}

// reaskWalk is a re-ask's walk: the candidate that served the first
// answer, then those of the first walk that were not tried.
func reaskWalk(cands []Candidate, attempts []Attempt) (served Candidate, rest []Candidate) {
	served = attempts[len(attempts)-1].Candidate
	rest = []Candidate{}
	for _, cand := range cands {
		if !slices.ContainsFunc(attempts, func(a Attempt) bool { return a.Candidate == cand }) {
			rest = append(rest, cand)
		}
	}
	return served, rest
}

// withFirstAttempts puts a re-ask's first attempts before its own in its
// failure, so that the error lists every attempt of the call.
func withFirstAttempts(first []Attempt, err error) error {
	var fe *FallbackError
	if errors.As(err, &fe) {
		fe.Attempts = append(slices.Clip(first), fe.Attempts...)
	}
	return err
}

// reaskText is what a re-ask tells the model about its first reply.
func reaskText(decodeErr error) string {
	return "Your reply could not be read as the JSON value asked for: " + decodeErr.Error() +
		". Reply again with only that JSON value: no prose, no code fence."
}

// decodeReply finds the JSON value in a reply, checks it against the
// schema asked for (when there is one) and decodes it.
func decodeReply[T any](reply string, schema map[string]any) (T, error) {
	var v T
	raw, err := extractJSON(reply)
	if err != nil {
		return v, err
	}
	if string(raw) == "null" {
		return v, errors.New("the reply is null, not the JSON value asked for")
	}
	if err := checkRequired(schema, raw, "the reply"); err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("the JSON does not fit the expected shape: %w", err)
	}
	return v, nil
}

// checkRequired reports the first field that the schema requires and raw
// lacks, in objects at any depth (arrays' items included). Names match as
// encoding/json matches them: exactly, else without regard to case. What
// is not an object or array where the schema expects one is left to the
// decoder to refuse.
func checkRequired(schema map[string]any, raw json.RawMessage, path string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch schema["type"] {
	case "object":
		if raw[0] != '{' {
			return nil
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil {
			return nil
		}
		lookup := func(name string) (json.RawMessage, bool) {
			if v, ok := fields[name]; ok {
				return v, true
			}
			for k, v := range fields {
				if strings.EqualFold(k, name) {
					return v, true
				}
			}
			return nil, false
		}
		required, _ := schema["required"].([]string)
		for _, name := range required {
			if _, ok := lookup(name); !ok {
				return fmt.Errorf("%s lacks the required field %q", path, name)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for name, sub := range props {
			subSchema, _ := sub.(map[string]any)
			if v, ok := lookup(name); ok && subSchema != nil {
				if err := checkRequired(subSchema, v, path+"."+name); err != nil {
					return err
				}
			}
		}
	case "array":
		items, _ := schema["items"].(map[string]any)
		if raw[0] != '[' || items == nil {
			return nil
		}
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			return nil
		}
		for i, item := range list {
			if err := checkRequired(items, item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxJSONStarts bounds how many '{' or '[' positions extractJSON tries, so
// that a long reply full of brackets costs little.
const maxJSONStarts = 64

// extractJSON returns the JSON value in a model's reply: the whole reply, the
// first fenced block that is JSON, or the first balanced object or array
// after leading prose.
func extractJSON(reply string) ([]byte, error) {
	text := []byte(strings.TrimSpace(reply))
	if len(text) == 0 {
		return nil, errors.New("the reply is empty")
	}
	if json.Valid(text) {
		return text, nil // a whole reply of JSON: an object, an array, or a string, number or boolean
	}
	for rest := text; ; {
		i := bytes.Index(rest, []byte("```"))
		if i < 0 {
			break
		}
		rest = rest[i+3:]
		if nl := bytes.IndexByte(rest, '\n'); nl >= 0 && isFenceLabel(rest[:nl]) {
			rest = rest[nl+1:]
		}
		end := bytes.Index(rest, []byte("```"))
		if end < 0 {
			end = len(rest) // an unclosed fence runs to the end
		}
		if block := bytes.TrimSpace(rest[:end]); len(block) > 0 && json.Valid(block) {
			return block, nil
		}
		if end == len(rest) {
			break
		}
		rest = rest[end+3:]
	}
	starts := 0
	for i := 0; i < len(text) && starts < maxJSONStarts; i++ {
		if text[i] != '{' && text[i] != '[' {
			continue
		}
		starts++
		if end := matchingClose(text[i:]); end > 0 && json.Valid(text[i:i+end]) {
			return text[i : i+end], nil
		}
	}
	return nil, errors.New("no JSON object or array was found in the reply")
}

// isFenceLabel reports whether the text after ``` is a language label such
// as "json" rather than content.
func isFenceLabel(b []byte) bool {
	b = bytes.TrimSpace(b)
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// matchingClose returns the length of the bracketed value starting at b[0],
// skipping brackets inside strings, or 0 when it does not close.
func matchingClose(b []byte) int {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return 0
}

// responseFormatFor asks for a JSON schema derived from t, whatever its
// root type (a slice asks for an array, which json_object would forbid), or
// for a JSON object when no schema can be derived or it names no type.
func responseFormatFor(t reflect.Type) *ResponseFormat {
	schema, ok := jsonSchema(t, 0)
	if !ok || schema["type"] == nil {
		return &ResponseFormat{Type: "json_object"}
	}
	raw, err := json.Marshal(schema)
	if err != nil {
		return &ResponseFormat{Type: "json_object"}
	}
	return &ResponseFormat{Type: "json_schema", JSONSchema: &JSONSchema{Name: schemaName(t), Schema: raw}}
}

// schemaName is t's name in the form response_format names take.
func schemaName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var b strings.Builder
	for _, r := range t.Name() {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "response"
	}
	return b.String()[:min(b.Len(), 64)]
}

// maxSchemaDepth stops recursive types.
const maxSchemaDepth = 8

var (
	timeType      = reflect.TypeFor[time.Time]()
	rawJSONType   = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// jsonSchema describes how encoding/json renders t. It reports false for
// what JSON Schema cannot describe here (channels, functions, recursion past
// maxSchemaDepth).
func jsonSchema(t reflect.Type, depth int) (map[string]any, bool) {
	if depth > maxSchemaDepth {
		return nil, false
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}, true
	case t == rawJSONType:
		return map[string]any{}, true
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
		return map[string]any{}, true // its own JSON form: anything
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}, true
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}, true
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, true
	case reflect.Interface:
		return map[string]any{}, true
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string"}, true // base64
		}
		items, ok := jsonSchema(t.Elem(), depth+1)
		if !ok {
			return nil, false
		}
		return map[string]any{"type": "array", "items": items}, true
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, false
		}
		values, ok := jsonSchema(t.Elem(), depth+1)
		if !ok {
			return nil, false
		}
		return map[string]any{"type": "object", "additionalProperties": values}, true
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		if !structFields(t, depth, props, &required) {
			return nil, false
		}
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s, true
	}
	return nil, false
}

// structFields adds t's JSON fields to props, following encoding/json's
// rules for tags and embedded structs; fields without omitempty or omitzero
// are required.
func structFields(t reflect.Type, depth int, props map[string]any, required *[]string) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if !structFields(ft, depth, props, required) {
					return false
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		var fs map[string]any
		if strings.Contains(","+opts+",", ",string,") {
			fs = map[string]any{"type": "string"}
		} else {
			var ok bool
			if fs, ok = jsonSchema(f.Type, depth+1); !ok {
				return false
			}
		}
		if desc := f.Tag.Get("description"); desc != "" {
			fs["description"] = desc
		}
		props[name] = fs
		if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
			*required = append(*required, name)
		}
	}
	return true
}

// ResponseJSON is [ChatJSON] over the Responses API: it asks for JSON
// through req.Text.Format (a json_schema derived from T, unless req.Text is
// set), decodes the output text into a T, and, when the output is not such
// a value (not JSON, null, a required field missing, the wrong shape), asks
// once more on the candidate that answered, showing the model its output
// and what was wrong. A second failure is a [*JSONDecodeError] (which
// matches [ErrProvider]); the Response then holds both calls' attempts.
func ResponseJSON[T any](ctx context.Context, c *Client, req ResponseRequest, opts ...Option) (T, *Response, error) {
	var zero T
	if err := c.usable(ctx); err != nil {
		return zero, nil, err
	}
	cfg, err := c.configure(opts)
	if err != nil {
		return zero, nil, err
	}
	schema, _ := jsonSchema(reflect.TypeFor[T](), 0)
	if req.Text == nil {
		rf := responseFormatFor(reflect.TypeFor[T]())
		req.Text = &ResponseText{Format: ResponseFormatSpec{Type: rf.Type}}
		if rf.JSONSchema != nil {
			req.Text.Format.Name, req.Text.Format.Schema = rf.JSONSchema.Name, rf.JSONSchema.Schema
		}
	}
	resp, err := c.Respond(ctx, req, opts...)
	if err != nil {
		return zero, nil, err
	}
	first := resp.OutputText()
	v, decodeErr := decodeReply[T](first, schema)
	if decodeErr == nil {
		return v, resp, nil
	}

	retry := req
	served, rest := reaskWalk(cfg.candidatesOf(Candidate{Model: req.Model, Provider: req.Provider}, req.Fallbacks, nil), resp.Attempts)
	retry.Model, retry.Provider, retry.Fallbacks = served.Model, served.Provider, rest
	retry.Input = slices.Clip(req.Input)
	if req.InputText != "" {
		retry.Input, retry.InputText = []InputItem{UserInput(req.InputText)}, ""
	}
	retry.Input = append(retry.Input, InputItem{Type: "message", Role: RoleAssistant, Text: first}, UserInput(reaskText(decodeErr)))
	firstAttempts := resp.Attempts
	resp, err = c.Respond(ctx, retry, opts...)
	if err != nil {
		return zero, nil, withFirstAttempts(firstAttempts, err)
	}
	resp.Attempts = append(slices.Clip(firstAttempts), resp.Attempts...)
	v, decodeErr = decodeReply[T](resp.OutputText(), schema)
	if decodeErr != nil {
		return zero, resp, &JSONDecodeError{Raw: resp.OutputText(), FirstRaw: first, Err: decodeErr}
	}
	return v, resp, nil
}
