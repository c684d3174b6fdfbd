package inference

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// mediaCall is an image or audio call in flight, its own attempter: the
// walk over one model's providers for its task (taskwalk.go), each
// attempt made by the provider's row (mediarows.go), at once or as a job
// (job.go), its file read (mediafile.go).
type mediaCall struct {
	call
	task string
	in   mediaInput
}

// run walks the model's providers for the call's task, then the
// fallbacks.
func (m *mediaCall) run(ctx context.Context, primary Candidate, fallbacks []Candidate) (*mediaOut, error) {
	cands, err := m.modelCandidates(ctx, primary, fallbacks, []string{m.task})
	if err != nil {
		return nil, err
	}
	return runRace[*mediaOut](ctx, &m.call, cands, m)
}

// attempt asks one provider, with one token: the request its row makes,
// the answer at once or the job's result, then the file.
func (m *mediaCall) attempt(ctx context.Context, cand Candidate, tok Token, hooks tryHooks) (out *mediaOut, att Attempt, err error) {
	c := m.c
	start := time.Now()
	att = Attempt{Candidate: cand, TokenSource: tok.Source}
	defer func() {
		att.Err, att.Duration, att.TimedOut = err, time.Since(start), timedOut(err)
	}()
	row := mediaRowFor(cand.Provider, m.task)
	if row == nil {
		return nil, att, &APIError{Kind: ErrModelNotSupported, Model: cand.Model, Provider: cand.Provider, hubURL: c.hub.String(),
			Message: "this client knows no " + m.task + " route of provider " + cand.Provider}
	}
	id := cand.Model
	if cand.Provider != "hf-inference" {
		if id, err = m.providerModelID(ctx, cand, []string{m.task}); err != nil {
			return nil, att, err
		}
	}
	x := exchange{method: http.MethodPost, url: c.base.String() + "/" + cand.Provider + row.route(id), accept: "application/json",
		about: cand, tok: tok, cfg: m.cfg, op: m.op, race: hooks, header: row.header}
	if row.decode == nil {
		x.accept = "*/*" // the file itself
	}
	if x.body, x.contentType, err = row.body(&m.in, id); err != nil {
		return nil, att, err
	}
	if row.job != nil {
		out, err = m.runJob(ctx, x, row, &att)
	} else {
		out, err = m.direct(ctx, x, row, &att)
	}
	if err != nil {
		return nil, att, err
	}
	out.cand = cand
	if err = m.resolve(ctx, x, out); err != nil {
		return nil, att, err
	}
	return out, att, nil
}

// direct reads an answer that is the result: the file itself, or the
// JSON that holds it (or the transcript).
func (m *mediaCall) direct(ctx context.Context, x exchange, row *mediaRow, att *Attempt) (*mediaOut, error) {
	if row.decode != nil {
		data, header, err := m.ask(ctx, ctx, x, att, m.jsonLimit())
		if err != nil {
			return nil, err
		}
		out := &mediaOut{provider: servedByOr(header, x.tok, x.about.Provider), requestID: att.RequestID}
		return out, m.decode(row, data, header, x, out)
	}
	actx, cancel := boundAttempt(ctx, m.cfg)
	defer cancel()
	resp, err := m.c.send(ctx, actx, x, att)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	stopClock(x.race)
	out := &mediaOut{provider: servedByOr(resp.Header, x.tok, x.about.Provider), requestID: att.RequestID}
	out.file, out.contentType, err = m.readFile(ctx, actx, resp, x)
	return out, err
}

// ask sends x and reads its 2xx answer whole, up to limit bytes, bounded
// by the attempt timeout under parent (the job's deadline, or ctx). An
// answer stops the race's hedge clock: a provider that answered is not
// slow, and a job it accepted is never sent twice. att, when not nil,
// gets the retries, status and request id.
func (m *mediaCall) ask(ctx, parent context.Context, x exchange, att *Attempt, limit int) ([]byte, http.Header, error) {
	actx, cancel := boundAttempt(parent, m.cfg)
	defer cancel()
	resp, err := m.c.send(ctx, actx, x, att)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	stopClock(x.race)
	data, err := m.c.read(ctx, actx, resp, x, limit)
	if err != nil {
		return nil, nil, err
	}
	if isHTML(resp.Header, data) {
		return nil, nil, m.c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the answer is a web page, not the provider's JSON")
	}
	return data, resp.Header, nil
}

// decode reads the answer that holds the result with the row's decoder:
// an answer it cannot read is the provider's failure, in its own words
// when it sent some (a JSON error in a 200); a flagged result is a
// content-policy refusal.
func (m *mediaCall) decode(row *mediaRow, data []byte, header http.Header, x exchange, out *mediaOut) error {
	err := row.decode(data, out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errFlagged):
		return m.flagged(http.StatusOK, header, x, err.Error())
	}
	return m.c.notWhatWasAsked(http.StatusOK, header, data, x, err.Error())
}

// flagged is a provider's refusal of the result as not safe for work: the
// same prompt would be refused anywhere, so it is a content-policy
// refusal, which ends the walk; never a blank image served as a success.
func (m *mediaCall) flagged(status int, header http.Header, x exchange, words string) error {
	e := m.c.classify(status, header, nil, x)
	e.Kind, e.Code, e.FromProvider = ErrInvalidRequest, "content_policy_violation", true
	e.Message = safeText(words, x.tok, maxMessageLen)
	e.fix = "The provider's safety checker flagged the result: every provider would likely refuse the same prompt, so change the prompt, not the provider"
	return e
}

// jsonLimit bounds an answer that may hold the file in base64: the result
// cap, a third more, and room for the JSON around it.
func (m *mediaCall) jsonLimit() int {
	return int(min(m.cfg.maxResult/3*4+1<<20, 1<<40))
}

// servedByOr is the provider that served an answer, as the router named
// it, else the one asked.
func servedByOr(h http.Header, tok Token, asked string) string {
	if p := servedBy(h, tok); p != "" {
		return p
	}
	return asked
}

// stopClock stops the race's hedge clock for an attempt whose provider
// answered.
func stopClock(h tryHooks) {
	if h.onBackoff != nil {
		h.onBackoff()
	}
}
