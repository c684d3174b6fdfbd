package inferencetest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// StreamScript is a streamed answer that misbehaves on purpose, to test
// how a client, or code built on it, recovers: a slow first token, a cut,
// a stall, a malformed event, a missing [DONE]. Make it an [Answer] with
// its Answer method:
//
//	r.On("org/flaky", inferencetest.StreamScript{Text: answer, CutAfter: 40}.Answer())
//
// A request that does not ask for a stream gets the whole text as one
// completion, after FirstTokenAfter. It speaks the chat completions
// protocol only: a Responses API request gets chat chunks (or a chat
// completion), which Respond and RespondStream refuse as not what was
// asked for; script a misbehaving Responses stream with an Answer of your
// own.
type StreamScript struct {
	// Text is the answer, sent one word per chunk after a chunk that
	// carries the role alone.
	Text string
	// Every is the pause after each word.
	Every time.Duration
	// FirstTokenAfter delays the first word; the headers and the role
	// chunk come at once.
	FirstTokenAfter time.Duration
	// CutAfter, when positive, cuts the connection after that many words:
	// no finish reason, no [DONE], no end of the chunked body.
	CutAfter int
	// StallAfter, when positive, goes silent after that many words, with
	// the connection open, for StallFor (until the client goes away when
	// StallFor is zero), then cuts it.
	StallAfter int
	StallFor   time.Duration
	// MalformedAfter, when positive, sends one event of invalid JSON after
	// that many words; the stream then goes on as if it had not.
	MalformedAfter int
	// NoDone leaves out [DONE]: the finish reason and the usage chunk end
	// the stream, and the body ends properly.
	NoDone bool
}

// Answer serves the script.
func (s StreamScript) Answer() Answer {
	return func(w http.ResponseWriter, req *Request) {
		if !req.Stream {
			if !pause(req, s.FirstTokenAfter) {
				return
			}
			writeCompletion(w, req, s.Text, providerOr(req, "together"))
			return
		}
		startStream(w, req)
		writeEvent(w, `{"id":"fake","object":"chat.completion.chunk","created":0,"model":`+quote(req.Model)+`,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
		if !pause(req, s.FirstTokenAfter) {
			return
		}
		words := splitWords(s.Text)
		for i, word := range words {
			switch {
			case s.CutAfter > 0 && i == s.CutAfter:
				panic(http.ErrAbortHandler) // net/http drops the connection as it is
			case s.StallAfter > 0 && i == s.StallAfter:
				if s.StallFor > 0 {
					pause(req, s.StallFor)
				} else {
					<-req.HTTP.Context().Done()
				}
				panic(http.ErrAbortHandler)
			case s.MalformedAfter > 0 && i == s.MalformedAfter:
				writeEvent(w, `{"id":"fake","object":"chat.completion.chunk","choices":[{"delta":{"content":`)
			}
			writeEvent(w, chunkJSON(req, word))
			if s.Every > 0 && !pause(req, s.Every) {
				return
			}
		}
		writeEvent(w, `{"id":"fake","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
		writeEvent(w, fmt.Sprintf(`{"id":"fake","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}`, len(words), 10+len(words)))
		if !s.NoDone {
			writeEvent(w, "[DONE]")
		}
	}
}

// pause waits d, and reports false when the client went away first.
func pause(req *Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-req.HTTP.Context().Done():
		return false
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Reset resets the connection (a TCP RST) before any byte of an answer, as
// a load balancer that drops a request does.
func Reset() Answer {
	return func(w http.ResponseWriter, req *Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0) // close with RST, not FIN
		}
		conn.Close()
	}
}

// RejectPrefill answers a request whose last message is from the assistant
// (a partial answer to continue) with a provider's 400, code
// invalid_prefill, as models that do not support prefill do; any other
// request gets a.
func RejectPrefill(a Answer) Answer {
	return func(w http.ResponseWriter, req *Request) {
		var body struct {
			Messages []struct {
				Role string `json:"role"`
			} `json:"messages"`
		}
		_ = json.Unmarshal(req.Body, &body)
		if n := len(body.Messages); n > 0 && body.Messages[n-1].Role == "assistant" {
			BadRequest("invalid_prefill", "This model does not support assistant message prefill. The conversation must end with a user message.")(w, req)
			return
		}
		a(w, req)
	}
}
