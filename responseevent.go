package inference

import (
	"encoding/json"
	"unsafe"

	"github.com/hfkit/inference/internal/jsonread"
)

// Decoding a Responses API event happens for every token of a streamed
// response, so it has two tiers, as decode.go has for chat chunks. The
// fast one, decodeEventFast, reads the delta events (output text,
// reasoning, reasoning summary, function call arguments: nearly every
// event of a stream) in one pass with internal/jsonread. Anything it
// declines goes to decodeEventStd, which reads every member as raw JSON
// with encoding/json and then gives the known ones their Go shape, so that
// an event of a shape this client does not expect is kept, never a
// failure. The fast tier either gives exactly what encoding/json gives or
// declines; FuzzDecodeEvent checks that on arbitrary events.
//
// An event costs one allocation for its bytes: Raw, the copy of the event
// the caller may keep, and after it, beyond Raw's capacity, the text of
// its strings (item id, delta). The strings are views of those bytes,
// which nothing writes once the event is decoded: appending to Raw
// reallocates, since its capacity ends where the strings begin.

// The members of an event the fast tier reads, in the order of the bits
// that mark them seen; "item" and "response" make it decline.
var eventKeys = []string{"type", "sequence_number", "item_id", "output_index", "content_index", "summary_index", "delta", "item", "response"}

// Event types, shared by every event that has them.
const (
	eventOutputTextDelta      = "response.output_text.delta"
	eventReasoningTextDelta   = "response.reasoning_text.delta"
	eventReasoningSummaryText = "response.reasoning_summary_text.delta"
	eventFunctionArgsDelta    = "response.function_call_arguments.delta"
)

// deltaEventType returns the type of a delta event the fast tier reads,
// as a shared string, or "" for any other type.
func deltaEventType(b []byte) string {
	switch string(b) {
	case eventOutputTextDelta:
		return eventOutputTextDelta
	case eventReasoningTextDelta:
		return eventReasoningTextDelta
	case eventReasoningSummaryText:
		return eventReasoningSummaryText
	case eventFunctionArgsDelta:
		return eventFunctionArgsDelta
	}
	return ""
}

// eventBuffer returns a copy of data with room after it for the text of
// its strings, and the copy as Raw, whose capacity ends with data. The
// unescaped strings of an event are no longer than the event (but for
// invalid UTF-8, each byte of which becomes three), so the room is as long
// as the event, up to 4 KiB: a longer delta costs a second allocation
// rather than every long event (a response.completed with the whole
// answer) twice its size.
func eventBuffer(data []byte) (buf []byte, raw json.RawMessage) {
	buf = make([]byte, len(data), len(data)+min(len(data), 4<<10))
	copy(buf, data)
	return buf, json.RawMessage(buf[:len(data):len(data)])
}

// appendText appends s to buf and returns the new buffer and a string of
// the appended bytes, which nothing writes again.
func appendText(buf, s []byte) ([]byte, string) {
	if len(s) == 0 {
		return buf, ""
	}
	start := len(buf)
	buf = append(buf, s...)
	return buf, unsafe.String(&buf[start], len(s))
}

// decodeEventFast reads a delta event of the usual shape into ev, its
// strings appended to buf (see eventBuffer); Raw is left to the caller.
// ok is false for anything else, which decodeEventStd then reads.
func decodeEventFast(data, buf []byte, ev *ResponseEvent) (ok bool) {
	var r jsonread.Reader
	r.Reset(data)
	if !r.Object() {
		return false
	}
	var seen uint16
	var typ string
	var out ResponseEvent
	for r.More('}') {
		switch member(&r, eventKeys, &seen) {
		case 0:
			if typ = deltaEventType(r.StringBytes()); typ == "" {
				return false // null, another kind, or another type: the standard tier's
			}
		case 1:
			out.SequenceNumber = optInt(&r)
		case 2:
			if !r.Null() {
				buf, out.ItemID = appendText(buf, r.StringBytes())
			}
		case 3:
			out.OutputIndex = optInt(&r)
		case 4:
			out.ContentIndex = optInt(&r)
		case 5:
			out.SummaryIndex = optInt(&r)
		case 6:
			if !r.Null() {
				buf, out.Delta = appendText(buf, r.StringBytes())
			}
		case 7, 8:
			return false
		default:
			r.Skip()
		}
	}
	if !r.End() || typ == "" {
		return false
	}
	out.Type = typ
	*ev = out
	return true
}

// The members of an event decodeEventStd reads.
var eventStdKeys = []string{"type", "sequence_number", "item_id", "output_index", "content_index", "summary_index", "delta", "item", "response", "message", "code"}

// decodeEventStd reads any event into ev (Raw left to the caller): its
// members picked as raw JSON (pickMembers), those of the expected kinds
// typed, the others left empty (a delta that is not a string, say, stays
// in Raw). Item and Response are read when they are objects; failure is
// set for an event that reports the response failed (response.failed, an
// error event) or has no type, and err only for JSON that is not an
// object, or an item or a response that cannot be read.
func decodeEventStd(data []byte, ev *ResponseEvent) (failure *serverText, err error) {
	var m [11]json.RawMessage
	if !pickMembers(data, eventStdKeys, m[:]) {
		return nil, notAnObject(data)
	}
	typ, seq, itemID, outputIndex, contentIndex, summaryIndex, delta, item, response, message, code := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10]
	*ev = ResponseEvent{Type: stringOf(typ), SequenceNumber: intOf(seq), ItemID: stringOf(itemID),
		OutputIndex: intOf(outputIndex), ContentIndex: intOf(contentIndex), SummaryIndex: intOf(summaryIndex), Delta: stringOf(delta)}
	switch ev.Type {
	case "":
		// Not an event of the Responses API: an error body, perhaps.
		t := readServerText(nil, data)
		if t.message == "" {
			t.message = "the stream sent an event without a type"
		}
		return &t, nil
	case "error":
		return &serverText{message: jsonText(message), code: jsonText(code)}, nil
	}
	if len(item) > 0 && item[0] == '{' {
		it, err := decodeOutputItem(item)
		if err != nil {
			return nil, err
		}
		ev.Item = &it
	}
	if len(response) > 0 && response[0] == '{' {
		resp, f, err := decodeResponse(response)
		switch {
		case err != nil:
			return nil, err
		case f != nil:
			return &serverText{message: f.Message, code: f.Code}, nil
		}
		ev.Response = resp
	}
	if ev.Type == "response.failed" && ev.Response == nil {
		return &serverText{message: "the response failed without a reason"}, nil
	}
	return nil, nil
}

// decodeEvent reads one event into ev, fast when it can, with Raw a copy
// of data.
func decodeEvent(data []byte, ev *ResponseEvent) (failure *serverText, err error) {
	buf, raw := eventBuffer(data)
	if decodeEventFast(data, buf, ev) {
		ev.Raw = raw
		return nil, nil
	}
	failure, err = decodeEventStd(data, ev)
	ev.Raw = raw
	return failure, err
}
