package inferencetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hfkit/inference"
)

// The router serves the Responses API at POST /v1/responses, scripted like
// chat by "model" or "model:provider"; such a Request has API "responses".
// [Reply] answers it with a response whose output is one message; the
// answers below give the other shapes, and the HTTP failures (Gated,
// ProviderError, ...) work as they do for chat.

// responseItem is an output item as the router writes it, or as
// ResponseItems was given it: lists of parts are []any of map[string]any.
type responseItem = map[string]any

func messageItem(text string) responseItem {
	return responseItem{"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}
}

// parts returns the parts of an item's list (content, summary) that are
// objects.
func parts(it responseItem, list string) []map[string]any {
	raw, _ := it[list].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, p := range raw {
		if m, ok := p.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// text is a string member of a part or an item, "" when it has none.
func text(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// countWords counts the words of the parts of an item's list whose type
// is typ.
func countWords(it responseItem, list, typ string) int {
	n := 0
	for _, p := range parts(it, list) {
		if p["type"] == typ {
			n += len(strings.Fields(text(p, "text")))
		}
	}
	return n
}

// inProgress is an item as response.output_item.added shows it: begun,
// its text and arguments still to come.
func inProgress(it responseItem) responseItem {
	out := make(responseItem, len(it))
	for k, v := range it {
		out[k] = v
	}
	if _, ok := it["status"]; ok {
		out["status"] = "in_progress"
	}
	switch it["type"] {
	case "message":
		out["content"] = []any{}
	case "reasoning":
		out["content"], out["summary"] = []any{}, []any{}
	case "function_call", "mcp_call", "mcp_approval_request":
		out["arguments"] = ""
		delete(out, "output")
		delete(out, "error")
	case "mcp_list_tools":
		out["tools"] = []any{}
	}
	return out
}

// writeResponse writes a response object (for a request without stream)
// or its events (with), as the router's Responses server does: created,
// in_progress, the items (each added, its parts streamed word by word,
// done), then completed, failed, or incomplete for a response cut short.
func writeResponse(w http.ResponseWriter, req *Request, status string, items []responseItem, failure map[string]string, incomplete string) {
	words, reasoning := 0, 0
	for _, it := range items {
		switch it["type"] {
		case "message":
			words += countWords(it, "content", "output_text")
		case "reasoning":
			reasoning += countWords(it, "content", "reasoning_text") + countWords(it, "summary", "summary_text")
		}
	}
	usage := inference.ResponseUsage{InputTokens: 10, OutputTokens: words + reasoning, TotalTokens: 10 + words + reasoning, ReasoningTokens: reasoning}
	if req.usage != nil {
		usage = *req.usage
	}
	obj := map[string]any{
		"id": "resp_fake", "object": "response", "created_at": req.Time.Unix(), "model": req.Candidate().String(),
		"status": status, "output": items, "error": nil, "incomplete_details": nil,
		"usage": map[string]any{"input_tokens": usage.InputTokens, "output_tokens": usage.OutputTokens, "total_tokens": usage.TotalTokens,
			"input_tokens_details":  map[string]int{"cached_tokens": usage.CachedInputTokens},
			"output_tokens_details": map[string]int{"reasoning_tokens": usage.ReasoningTokens}},
	}
	if failure != nil {
		obj["error"] = failure
	}
	if incomplete != "" {
		obj["incomplete_details"] = map[string]string{"reason": incomplete}
	}
	if w.Header().Get("X-Inference-Provider") == "" {
		w.Header().Set("X-Inference-Provider", providerOr(req, "together"))
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(obj)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	seq := 0
	event := func(typ string, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		data, _ := json.Marshal(fields)
		writeEvent(w, string(data))
	}
	progress := map[string]any{}
	for k, v := range obj {
		progress[k] = v
	}
	progress["status"], progress["output"], progress["error"], progress["incomplete_details"] = "in_progress", []any{}, nil, nil
	event("response.created", map[string]any{"response": progress})
	event("response.in_progress", map[string]any{"response": progress})
	for i, it := range items {
		event("response.output_item.added", map[string]any{"output_index": i, "item": inProgress(it)})
		streamItem(event, i, it)
		event("response.output_item.done", map[string]any{"output_index": i, "item": it})
	}
	switch {
	case failure != nil:
		event("response.failed", map[string]any{"response": obj})
	case status == "incomplete":
		event("response.incomplete", map[string]any{"response": obj})
	default:
		event("response.completed", map[string]any{"response": obj})
	}
}

// streamItem writes the events between an item's added and done: its
// text and arguments, piece by piece, as the router's Responses server
// sends them.
func streamItem(event func(string, map[string]any), i int, it responseItem) {
	id := it["id"]
	at := func(fields map[string]any) map[string]any {
		fields["item_id"], fields["output_index"] = id, i
		return fields
	}
	switch it["type"] {
	case "message":
		for j, p := range parts(it, "content") {
			full := text(p, "text")
			kind := "output_text"
			if p["type"] == "refusal" {
				full, kind = text(p, "refusal"), "refusal"
			}
			event("response.content_part.added", at(map[string]any{"content_index": j, "part": map[string]any{"type": p["type"], kind: ""}}))
			for _, piece := range splitWords(full) {
				event("response."+kind+".delta", at(map[string]any{"content_index": j, "delta": piece}))
			}
			event("response."+kind+".done", at(map[string]any{"content_index": j, kind: full}))
			event("response.content_part.done", at(map[string]any{"content_index": j, "part": p}))
		}
	case "reasoning":
		for k, p := range parts(it, "summary") {
			full := text(p, "text")
			event("response.reasoning_summary_part.added", at(map[string]any{"summary_index": k, "part": map[string]any{"type": "summary_text", "text": ""}}))
			for _, piece := range splitWords(full) {
				event("response.reasoning_summary_text.delta", at(map[string]any{"summary_index": k, "delta": piece}))
			}
			event("response.reasoning_summary_text.done", at(map[string]any{"summary_index": k, "text": full}))
			event("response.reasoning_summary_part.done", at(map[string]any{"summary_index": k, "part": p}))
		}
		for j, p := range parts(it, "content") {
			full := text(p, "text")
			event("response.content_part.added", at(map[string]any{"content_index": j, "part": map[string]any{"type": p["type"], "text": ""}}))
			for _, piece := range splitWords(full) {
				event("response.reasoning_text.delta", at(map[string]any{"content_index": j, "delta": piece}))
			}
			event("response.reasoning_text.done", at(map[string]any{"content_index": j, "text": full}))
			event("response.content_part.done", at(map[string]any{"content_index": j, "part": p}))
		}
	case "function_call":
		event("response.function_call_arguments.delta", at(map[string]any{"delta": it["arguments"]}))
		event("response.function_call_arguments.done", at(map[string]any{"arguments": it["arguments"]}))
	case "mcp_call":
		event("response.mcp_call.in_progress", at(map[string]any{}))
		event("response.mcp_call_arguments.delta", at(map[string]any{"delta": it["arguments"]}))
		event("response.mcp_call_arguments.done", at(map[string]any{"arguments": it["arguments"]}))
		if it["error"] != nil {
			event("response.mcp_call.failed", at(map[string]any{}))
		} else {
			event("response.mcp_call.completed", at(map[string]any{}))
		}
	case "mcp_list_tools":
		event("response.mcp_list_tools.in_progress", at(map[string]any{}))
		if it["error"] != nil {
			event("response.mcp_list_tools.failed", at(map[string]any{}))
		} else {
			event("response.mcp_list_tools.completed", at(map[string]any{}))
		}
	}
}

// ResponseReply answers a Responses API request with one output message
// of text (status completed, usage counted in words), or its events when
// the request asked for a stream.
func ResponseReply(text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		writeResponse(w, req, "completed", []responseItem{messageItem(text)}, nil, "")
	}
}

// ResponseIncomplete answers with text cut by max_output_tokens: status
// "incomplete" with incomplete_details.reason "max_output_tokens" (its
// message item's status is "incomplete" too), a success; a stream ends
// with a response.incomplete event instead of response.completed, as the
// protocol has it.
func ResponseIncomplete(text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		item := messageItem(text)
		item["status"] = "incomplete" // the message was cut too
		writeResponse(w, req, "incomplete", []responseItem{item}, nil, "max_output_tokens")
	}
}

// ResponseReasoning answers as a model that shows a summary of its
// reasoning: a reasoning item whose summary is one summary_text part of
// summary (streamed as response.reasoning_summary_text.delta events,
// word by word), then a message of text. The summary's words count as
// reasoning tokens. For reasoning text (reasoning_text content parts, as
// open models give it) or several summary parts, give the items to
// [ResponseItems].
func ResponseReasoning(summary, text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		reasoning := responseItem{"id": "rs_fake", "type": "reasoning", "status": "completed", "content": []any{},
			"summary": []any{map[string]any{"type": "summary_text", "text": summary}}}
		writeResponse(w, req, "completed", []responseItem{reasoning, messageItem(text)}, nil, "")
	}
}

// ResponseUsage answers with a, the usage of its response set to u:
// input tokens with the part served from a prompt cache
// (CachedInputTokens, sent as input_tokens_details.cached_tokens), output
// tokens with the part spent reasoning, and the total, as given.
func ResponseUsage(u inference.ResponseUsage, a Answer) Answer {
	return func(w http.ResponseWriter, req *Request) {
		req.usage = &u
		a(w, req)
	}
}

// ResponseFunctionCall answers with a call of the function name with
// arguments (JSON text), as a model that uses a tool does.
func ResponseFunctionCall(name, arguments string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		item := responseItem{"id": "fc_fake", "type": "function_call", "call_id": "call_fake", "name": name,
			"arguments": arguments, "status": "completed"}
		writeResponse(w, req, "completed", []responseItem{item}, nil, "")
	}
}

// ResponseItems answers with the output items given as JSON objects, such
// as a message, reasoning (with content and summary parts),
// mcp_list_tools, mcp_call, or a type a client does not know. A stream
// gives each its events, as the router's Responses server does: a
// message's text and a reasoning item's text and summary word by word, a
// function call's or an MCP call's arguments. It panics on an item that is
// not a JSON object: a mistake in the test.
func ResponseItems(items ...string) Answer {
	out := make([]responseItem, 0, len(items))
	for _, it := range items {
		var m responseItem
		if err := json.Unmarshal([]byte(it), &m); err != nil || m == nil {
			panic(fmt.Sprintf("inferencetest: ResponseItems: %q is not a JSON object", it))
		}
		out = append(out, m)
	}
	return func(w http.ResponseWriter, req *Request) {
		writeResponse(w, req, "completed", out, nil, "")
	}
}

// ResponseFailed answers as the router does when the chat call behind a
// response fails: HTTP 200 with "status": "failed" and
// {"code": "server_error", "message": message} (message is the upstream
// error's text, such as "403 This authentication method does not have
// sufficient permissions to call Inference Providers on behalf of user
// alice"), or, for a stream, a response.failed event after
// response.created and response.in_progress.
func ResponseFailed(message string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		writeResponse(w, req, "failed", nil, map[string]string{"code": "server_error", "message": message}, "")
	}
}

// ResponseValidationError answers as the router does for a request it
// cannot validate: 400 with {"success": false, "error": [issue],
// "details": [issue]}, the issue naming the field by path.
func ResponseValidationError(path, message string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		issue := map[string]any{"code": "invalid_type", "path": strings.Split(path, "."), "message": message}
		body, _ := json.Marshal(map[string]any{"success": false, "error": []any{issue}, "details": []any{issue}})
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(body)
	}
}
