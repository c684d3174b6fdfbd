package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// The operations beyond chat (embeddings, images, audio) walk one model's
// providers: the router serves them at a provider's own route, not under
// a model name the router resolves, so "auto" means every live provider
// the Hub maps the model to for the operation's task, in the Hub's order
// (the user's preference order), then the request's own Fallbacks.

// validateWalk checks the candidates of a request that walks one model's
// providers: its own (a provider's name, or "" for the Hub's; never a
// chat policy, which only the router's chat endpoint knows) and its
// fallbacks.
func validateWalk(model, provider string, fallbacks []Candidate) error {
	if err := (Candidate{Model: model, Provider: provider}).validate(); err != nil {
		return invalidRequest("%s", err)
	}
	switch strings.ToLower(provider) {
	case ProviderFastest, ProviderCheapest, ProviderPreferred:
		return invalidRequest("Provider %q is a chat policy; give \"\" (every provider of the model, in the Hub's order) or a provider's name", provider)
	}
	for i, f := range fallbacks {
		if err := f.validate(); err != nil {
			return invalidRequest("Fallbacks[%d]: %s", i, err)
		}
	}
	return nil
}

// modelCandidates lists a call's candidates: primary, then fallbacks, each
// as named when it names a provider, else expanded into the providers the
// Hub maps its model to for one of tasks. Without the Hub's word (it
// cannot be read, or it maps no provider for the task), hf-inference is
// asked: its answer (a 404 for a missing model) says what is wrong.
func (w *call) modelCandidates(ctx context.Context, primary Candidate, fallbacks []Candidate, tasks []string) ([]Candidate, error) {
	c := w.c
	var out []Candidate
	add := func(cand Candidate) {
		if !slices.Contains(out, cand) {
			out = append(out, cand)
		}
	}
	for _, cand := range append([]Candidate{primary}, fallbacks...) {
		cand = cand.normalized()
		if cand.Provider != "" && cand.Provider != ProviderEvery {
			add(cand)
			continue
		}
		providers, err := w.taskProviders(ctx, cand.Model, tasks)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("inference: %s %s: %w", w.op, cand.Model, ctx.Err())
			}
			if errors.Is(err, ErrInvalidRequest) {
				return nil, err // the client's own setup, not the Hub, refused
			}
			c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: the Hub's provider mapping could not be read; trying hf-inference",
				slog.String("model", cand.Model), slog.String("reason", err.Error()))
			add(Candidate{Model: cand.Model, Provider: "hf-inference"})
			continue
		}
		if len(providers) == 0 {
			add(Candidate{Model: cand.Model, Provider: "hf-inference"})
		}
		for _, p := range providers {
			add(Candidate{Model: cand.Model, Provider: p.Provider})
		}
	}
	return out, nil
}

// taskProviders are the model's live providers for one of tasks, in the
// Hub's order.
func (w *call) taskProviders(ctx context.Context, model string, tasks []string) ([]ProviderMapping, error) {
	info, err := w.hubModelCached(ctx, model)
	if err != nil {
		return nil, err
	}
	var out []ProviderMapping
	for _, p := range info.Providers {
		if p.Status == "live" && slices.Contains(tasks, p.Task) {
			out = append(out, p)
		}
	}
	return out, nil
}

// providerModelID is the provider's own id for cand's model, from the
// Hub's mapping for one of tasks; a provider the Hub maps no live model of
// for the task is ErrModelNotSupported.
func (w *call) providerModelID(ctx context.Context, cand Candidate, tasks []string) (string, error) {
	providers, err := w.taskProviders(ctx, cand.Model, tasks)
	if err != nil {
		return "", err
	}
	i := slices.IndexFunc(providers, func(p ProviderMapping) bool { return p.Provider == cand.Provider })
	if i < 0 || providers[i].ProviderID == "" {
		return "", &APIError{Kind: ErrModelNotSupported, Model: cand.Model, Provider: cand.Provider, hubURL: w.c.hub.String(),
			Message: "the Hub maps no live " + tasks[0] + " model of provider " + cand.Provider + " to " + cand.Model}
	}
	return providers[i].ProviderID, nil
}

// hubModelCached is the Hub's model info, kept for the models TTL, asked
// with the call's first token.
func (w *call) hubModelCached(ctx context.Context, model string) (*ModelInfo, error) {
	c := w.c
	if info := c.hubModels.get(model, time.Now()); info != nil {
		return info, nil
	}
	tokens := c.newTokenCursor(w.cfg, time.Now())
	tok, ok := tokens.advance(ctx)
	if !ok {
		return nil, tokens.failure(ctx)
	}
	info, err := c.model(ctx, tok, model)
	if err != nil {
		return nil, err
	}
	c.hubModels.put(model, info, time.Now().Add(c.models.ttl))
	return info, nil
}
