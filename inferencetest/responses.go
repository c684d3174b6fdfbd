package inferencetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The router serves the Responses API at POST /v1/responses, scripted like
// chat by "model" or "model:provider"; such a Request has API "responses".
// [Reply] answers it with a response whose output is one message; the
// answers below give the other shapes, and the HTTP failures (Gated,
// ProviderError, ...) work as they do for chat.

// responseItem is an output item as the router writes it.
type responseItem map[string]any

func messageItem(text string) responseItem {
	return responseItem{"id": "msg_fake", "type": "message", "role": "assistant", "status": "completed",
		"content": []map[string]any{{"type": "output_text", "text": text, "annotations": []any{}}}}
}

// writeResponse writes a response object (for a request without stream)
// or its events (with), as the router's Responses server does: created,
// in_progress, the items, then completed, failed or incomplete.
func writeResponse(w http.ResponseWriter, req *Request, status string, items []responseItem, failure map[string]string, incomplete string) {
	words := 0
	for _, it := range items {
		if it["type"] == "message" {
			for _, c := range it["content"].([]map[string]any) {
				words += len(strings.Fields(fmt.Sprint(c["text"])))
			}
		}
	}
	obj := map[string]any{
		"id": "resp_fake", "object": "response", "created_at": req.Time.Unix(), "model": req.Candidate().String(),
		"status": status, "output": items, "error": nil,
		"usage": map[string]any{"input_tokens": 10, "output_tokens": words, "total_tokens": 10 + words,
			"input_tokens_details": map[string]int{"cached_tokens": 0}, "output_tokens_details": map[string]int{"reasoning_tokens": 0}},
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
	progress["status"], progress["output"], progress["error"] = "in_progress", []any{}, nil
	event("response.created", map[string]any{"response": progress})
	event("response.in_progress", map[string]any{"response": progress})
	for i, it := range items {
		event("response.output_item.added", map[string]any{"output_index": i, "item": it})
		switch it["type"] {
		case "message":
			event("response.content_part.added", map[string]any{"item_id": it["id"], "output_index": i, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": ""}})
			text := fmt.Sprint(it["content"].([]map[string]any)[0]["text"])
			for _, piece := range splitWords(text) {
				event("response.output_text.delta", map[string]any{"item_id": it["id"], "output_index": i, "content_index": 0, "delta": piece})
			}
			event("response.output_text.done", map[string]any{"item_id": it["id"], "output_index": i, "content_index": 0, "text": text})
			event("response.content_part.done", map[string]any{"item_id": it["id"], "output_index": i, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": text}})
		case "function_call":
			event("response.function_call_arguments.delta", map[string]any{"item_id": it["id"], "output_index": i, "delta": it["arguments"]})
			event("response.function_call_arguments.done", map[string]any{"item_id": it["id"], "output_index": i, "arguments": it["arguments"]})
		}
		event("response.output_item.done", map[string]any{"output_index": i, "item": it})
	}
	switch {
	case failure != nil:
		event("response.failed", map[string]any{"response": obj})
	default:
		event("response.completed", map[string]any{"response": obj})
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
// "incomplete", a success with its reason.
func ResponseIncomplete(text string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		writeResponse(w, req, "incomplete", []responseItem{messageItem(text)}, nil, "max_output_tokens")
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
// as reasoning, mcp_list_tools, mcp_call or a type a client does not know.
func ResponseItems(items ...string) Answer {
	return func(w http.ResponseWriter, req *Request) {
		out := make([]responseItem, 0, len(items))
		for _, it := range items {
			var m responseItem
			if err := json.Unmarshal([]byte(it), &m); err != nil {
				panic("inferencetest: ResponseItems: " + err.Error())
			}
			out = append(out, m)
		}
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
