package inference

import "strings"

// ChatAccumulator joins streamed chunks into a ChatResponse: content
// appended per choice, tool call pieces joined by their index, the last
// finish reason and usage kept. The zero value is ready to use.
type ChatAccumulator struct {
	resp ChatResponse
	// content and reasoning hold each choice's text as it grows: appending
	// to a string per chunk would copy the whole answer on every chunk.
	// Pointers, because a strings.Builder must not move once written to,
	// and a slice that grows (a second choice) moves its elements.
	content   []*strings.Builder
	reasoning []*strings.Builder
}

// Add folds one chunk in. A chunk with Restarted set replaces everything
// added before it: it starts the answer again.
func (a *ChatAccumulator) Add(c ChatChunk) {
	if c.Restarted {
		*a = ChatAccumulator{}
	}
	if a.resp.ID == "" {
		a.resp.ID = c.ID
	}
	if a.resp.Model == "" {
		a.resp.Model = c.Model
	}
	if a.resp.Created == 0 {
		a.resp.Created = c.Created
	}
	if c.Usage != nil {
		a.resp.Usage = *c.Usage
	}
	for _, ch := range c.Choices {
		if ch.Index < 0 || ch.Index > 1024 {
			continue // not a plausible choice index; ignore rather than allocate
		}
		for len(a.resp.Choices) <= ch.Index {
			a.resp.Choices = append(a.resp.Choices, Choice{Index: len(a.resp.Choices), Message: Message{Role: RoleAssistant}})
			a.content = append(a.content, new(strings.Builder))
			a.reasoning = append(a.reasoning, new(strings.Builder))
		}
		dst := &a.resp.Choices[ch.Index]
		if ch.Delta.Role != "" {
			dst.Message.Role = ch.Delta.Role
		}
		a.content[ch.Index].WriteString(ch.Delta.Content)
		a.reasoning[ch.Index].WriteString(ch.Delta.Reasoning)
		dst.Message.Parts = append(dst.Message.Parts, ch.Delta.Parts...)
		for _, tc := range ch.Delta.ToolCalls {
			mergeToolCall(&dst.Message, tc)
		}
		if ch.FinishReason != "" {
			dst.FinishReason = ch.FinishReason
		}
	}
}

// mergeToolCall adds a tool call piece to the call with the same index,
// or starts a new call.
func mergeToolCall(m *Message, piece ToolCall) {
	for i := range m.ToolCalls {
		tc := &m.ToolCalls[i]
		if tc.Index != piece.Index {
			continue
		}
		if piece.ID != "" {
			tc.ID = piece.ID
		}
		if piece.Type != "" {
			tc.Type = piece.Type
		}
		if tc.Function.Name == "" {
			tc.Function.Name = piece.Function.Name
		}
		tc.Function.Arguments += piece.Function.Arguments
		return
	}
	m.ToolCalls = append(m.ToolCalls, piece)
}

// Response returns the joined answer so far. The result is a copy.
func (a *ChatAccumulator) Response() *ChatResponse {
	r := a.resp
	r.Choices = make([]Choice, len(a.resp.Choices))
	for i, ch := range a.resp.Choices {
		ch.Message.Content = a.content[i].String()
		ch.Message.Reasoning = a.reasoning[i].String()
		ch.Message.Parts = append([]ContentPart(nil), ch.Message.Parts...)
		ch.Message.ToolCalls = append([]ToolCall(nil), ch.Message.ToolCalls...)
		r.Choices[i] = ch
	}
	return &r
}

// The stream engine's view of the answer (see answer in session.go).

func (a *ChatAccumulator) add(c ChatChunk) { a.Add(c) }

func (a *ChatAccumulator) choices() int { return len(a.resp.Choices) }

func (a *ChatAccumulator) text(i int) (content, reasoning string) {
	return a.content[i].String(), a.reasoning[i].String()
}

func (a *ChatAccumulator) finished(i int) bool { return a.resp.Choices[i].FinishReason != "" }

func (a *ChatAccumulator) tools() bool {
	for _, ch := range a.resp.Choices {
		if len(ch.Message.ToolCalls) > 0 {
			return true
		}
	}
	return false
}

func (a *ChatAccumulator) renamed() { a.resp.ID, a.resp.Model, a.resp.Created = "", "", 0 }
