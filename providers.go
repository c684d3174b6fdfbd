package inference

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"
)

// ProviderPolicy orders the providers of an expanded candidate.
type ProviderPolicy string

// Provider orders.
const (
	// OrderPreferred keeps the router's order.
	OrderPreferred ProviderPolicy = "preferred"
	// OrderCheapest puts the lowest output price first; unknown prices last.
	OrderCheapest ProviderPolicy = "cheapest"
	// OrderFastest puts the highest throughput first; unknown last.
	OrderFastest ProviderPolicy = "fastest"
)

// providerOrder is how a client orders expanded providers.
type providerOrder struct {
	policy ProviderPolicy
	first  []string
}

// expand replaces candidates whose provider is ProviderEvery (or, with
// WithProviderWalk, the router's choice) by one candidate per eligible
// provider.
func (c *Client) expand(ctx context.Context, req *ChatRequest, cands []Candidate) []Candidate {
	needed := false
	for _, cand := range cands {
		needed = needed || c.expands(cand)
	}
	if !needed {
		return cands
	}
	out := make([]Candidate, 0, len(cands)*4)
	add := func(cand Candidate) {
		if !slices.Contains(out, cand) {
			out = append(out, cand)
		}
	}
	for _, cand := range cands {
		if !c.expands(cand) {
			add(cand)
			continue
		}
		providers, err := c.eligibleProviders(ctx, req, cand.Model)
		if err != nil || len(providers) == 0 {
			reason := "no provider can take this request"
			if err != nil {
				reason = err.Error()
			}
			c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: provider discovery failed; leaving the choice to the router",
				slog.String("model", cand.Model), slog.String("reason", reason))
			add(Candidate{Model: cand.Model})
			continue
		}
		for _, p := range providers {
			add(Candidate{Model: cand.Model, Provider: p})
		}
		c.logger.LogAttrs(ctx, slog.LevelInfo, "inference: expanded the model into its providers",
			slog.String("model", cand.Model), slog.String("providers", strings.Join(providers, ",")),
			slog.String("order", string(c.order.policy)))
	}
	return out
}

func (c *Client) expands(cand Candidate) bool {
	return cand.Provider == ProviderEvery || (c.walkAuto && cand.Provider == "")
}

// eligibleProviders lists the live providers of model that can take req,
// in the client's order.
func (c *Client) eligibleProviders(ctx context.Context, req *ChatRequest, model string) ([]string, error) {
	m, err := c.RouterModel(ctx, model)
	if err != nil {
		return nil, err
	}
	need := estimateTokens(req)
	var eligible []ModelProvider
	for _, p := range m.Providers {
		switch {
		case !p.Live():
		case len(req.Tools) > 0 && p.SupportsTools != nil && !*p.SupportsTools:
		case req.ResponseFormat != nil && p.SupportsStructuredOutput != nil && !*p.SupportsStructuredOutput:
		case p.ContextLength > 0 && need > p.ContextLength:
		default:
			eligible = append(eligible, p)
		}
	}
	c.order.sort(eligible)
	names := make([]string, len(eligible))
	for i, p := range eligible {
		names[i] = p.Provider
	}
	return names, nil
}

// sort orders providers by the policy, the named ones first.
func (o providerOrder) sort(ps []ModelProvider) {
	rank := func(p ModelProvider) int {
		if i := slices.Index(o.first, p.Provider); i >= 0 {
			return i
		}
		return len(o.first)
	}
	slices.SortStableFunc(ps, func(a, b ModelProvider) int {
		if r := cmp.Compare(rank(a), rank(b)); r != 0 {
			return r
		}
		switch o.policy {
		case OrderCheapest:
			return compareKnown(price(a), price(b), false)
		case OrderFastest:
			return compareKnown(a.Throughput, b.Throughput, true)
		}
		return 0
	})
}

// price is a provider's output price, or 0 when unknown.
func price(p ModelProvider) float64 {
	if p.Pricing == nil {
		return 0
	}
	return p.Pricing.Output
}

// compareKnown orders known (positive) values before unknown (zero) ones,
// ascending or descending.
func compareKnown(a, b float64, descending bool) int {
	switch {
	case a <= 0 && b <= 0:
		return 0
	case a <= 0:
		return 1
	case b <= 0:
		return -1
	case descending:
		return cmp.Compare(b, a)
	}
	return cmp.Compare(a, b)
}

// estimateTokens guesses the context a request needs: about four
// characters per token of its messages, plus MaxTokens. It is used only to
// leave out providers whose context is plainly too short.
func estimateTokens(req *ChatRequest) int {
	chars := 0
	for _, m := range req.Messages {
		chars += len(m.Content)
		for _, p := range m.Parts {
			chars += len(p.Text)
		}
	}
	return chars/4 + req.MaxTokens
}
