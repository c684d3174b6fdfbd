package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DefaultModelsTTL is how long the router's model list is kept before it
// is fetched again.
const DefaultModelsTTL = 10 * time.Minute

// maxModelsBody bounds the router's model list.
const maxModelsBody = 16 << 20

// RouterModel is a model as the router lists it (GET /v1/models).
type RouterModel struct {
	// ID is the model's Hub id.
	ID string `json:"id"`
	// Created is when the model was added, in Unix seconds.
	Created int64 `json:"created,omitempty"`
	// OwnedBy is the model's owner.
	OwnedBy string `json:"owned_by,omitempty"`
	// InputModalities and OutputModalities are such as "text", "image".
	InputModalities  []string `json:"input_modalities,omitempty"`
	OutputModalities []string `json:"output_modalities,omitempty"`
	// Providers serve the model, in the router's order.
	Providers []ModelProvider `json:"providers"`
}

// ModelProvider is one provider of a RouterModel. Fields the router leaves
// out are zero (or nil for the yes/no ones).
type ModelProvider struct {
	// Provider is the provider's name, such as "together".
	Provider string `json:"provider"`
	// Status is "live", or "error" while the router's checks fail.
	Status string `json:"status"`
	// ContextLength is the longest context the provider serves, in tokens.
	ContextLength int `json:"context_length,omitempty"`
	// Pricing is in US dollars per million tokens, when given.
	Pricing *Pricing `json:"pricing,omitempty"`
	// SupportsTools says whether tool calls work; nil when not said.
	SupportsTools *bool `json:"supports_tools,omitempty"`
	// SupportsStructuredOutput says whether response_format works; nil
	// when not said.
	SupportsStructuredOutput *bool `json:"supports_structured_output,omitempty"`
	// Throughput is in output tokens per second, when given.
	Throughput float64 `json:"throughput,omitempty"`
}

// Pricing is a provider's price in US dollars per million tokens.
type Pricing struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
}

// Live reports whether the router currently routes to the provider.
func (p ModelProvider) Live() bool { return p.Status == "live" }

// modelCache is the router's model list, fetched on demand and kept for a
// TTL. A failed refresh keeps the old list.
type modelCache struct {
	ttl time.Duration
	// lock is held while fetching, so that callers share one fetch; it is
	// a channel so that a caller waiting for it still honours its context.
	lock    chan struct{}
	models  map[string]RouterModel
	order   []string
	fetched time.Time
	// limited is the rate-limited failure of the last fetch, and until
	// when the router asked not to be asked again: fetches wait for it.
	limited      error
	limitedUntil time.Time
}

func newModelCache(ttl time.Duration) *modelCache {
	return &modelCache{ttl: ttl, lock: make(chan struct{}, 1)}
}

func (mc *modelCache) acquire(ctx context.Context) error {
	select {
	case mc.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("inference: waiting for the model list: %w", ctx.Err())
	}
}

func (mc *modelCache) release() { <-mc.lock }

// RouterModels returns the router's model list (GET {router}/v1/models), from the
// client's cache while it is younger than the TTL ([WithModelsTTL]). When a
// refresh fails and an older list is held, the older list is returned and
// the failure is logged at warn; with no list held, the failure is returned.
func (c *Client) RouterModels(ctx context.Context) ([]RouterModel, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	if err := c.refreshModels(ctx, false); err != nil {
		return nil, err
	}
	if err := c.models.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.models.release()
	out := make([]RouterModel, 0, len(c.models.order))
	for _, id := range c.models.order {
		out = append(out, c.models.models[id])
	}
	return out, nil
}

// RefreshRouterModels fetches the router's model list now, whatever the cache's
// age. On failure the cached list, if any, is kept and the error returned.
func (c *Client) RefreshRouterModels(ctx context.Context) error {
	if err := c.usable(ctx); err != nil {
		return err
	}
	return c.refreshModels(ctx, true)
}

// RouterModel returns one model of the router's list, from the cache like
// [Client.RouterModels]. A model the router does not list is [ErrModelNotFound].
func (c *Client) RouterModel(ctx context.Context, id string) (*RouterModel, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	if err := c.refreshModels(ctx, false); err != nil {
		return nil, err
	}
	if err := c.models.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.models.release()
	m, ok := c.models.models[id]
	if !ok {
		return nil, &APIError{Kind: ErrModelNotFound, Model: id, Message: "the router does not list this model", hubURL: c.hub.String()}
	}
	return &m, nil
}

func (c *Client) refreshModels(ctx context.Context, force bool) error {
	mc := c.models
	if err := mc.acquire(ctx); err != nil {
		return err
	}
	defer mc.release()
	if !force && mc.models != nil && time.Since(mc.fetched) < mc.ttl {
		return nil
	}
	if time.Now().Before(mc.limitedUntil) {
		// Rate limited: the older list, if any, serves until the window
		// ends; without one, the walk leaves the choice to the router.
		if mc.models != nil && !force {
			return nil
		}
		return mc.limited
	}
	models, order, err := c.fetchModels(ctx)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Kind == ErrRateLimited && apiErr.RetryAfter > 0 {
		mc.limited, mc.limitedUntil = err, time.Now().Add(apiErr.RetryAfter)
		c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: the model list is rate-limited; backing off",
			slog.Duration("wait", apiErr.RetryAfter))
	}
	if err != nil {
		if mc.models == nil || ctx.Err() != nil || force {
			return err
		}
		c.logger.LogAttrs(ctx, slog.LevelWarn, "inference: refreshing the router's model list failed; keeping the older list",
			slog.Time("fetched", mc.fetched), slog.String("error", err.Error()))
		return nil
	}
	mc.models, mc.order, mc.fetched = models, order, time.Now()
	return nil
}

// fetchModels GETs {router}/v1/models through the client's retries and
// middleware.
func (c *Client) fetchModels(ctx context.Context) (map[string]RouterModel, []string, error) {
	tok, err := c.firstToken(ctx)
	if err != nil {
		tok = Token{} // the list is public; send no token rather than fail
	}
	var list []RouterModel
	err = c.get(ctx, tok, c.base.String()+"/v1/models", Candidate{}, maxModelsBody, "the router's model list is not readable",
		func(data []byte) (err error) {
			list, err = decodeModelList(data)
			return err
		})
	if err != nil {
		return nil, nil, err
	}
	models := make(map[string]RouterModel, len(list))
	order := make([]string, 0, len(list))
	for _, m := range list {
		if _, dup := models[m.ID]; !dup && m.ID != "" {
			order = append(order, m.ID)
		}
		models[m.ID] = m
	}
	return models, order, nil
}

// decodeModelList reads {"object":"list","data":[...]}, with each model's
// modalities under "architecture".
func decodeModelList(data []byte) ([]RouterModel, error) {
	var w struct {
		Data []struct {
			RouterModel
			Architecture struct {
				InputModalities  []string `json:"input_modalities"`
				OutputModalities []string `json:"output_modalities"`
			} `json:"architecture"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		return nil, err
	}
	if w.Data == nil {
		return nil, fmt.Errorf("no data array")
	}
	out := make([]RouterModel, len(w.Data))
	for i, d := range w.Data {
		m := d.RouterModel
		if len(m.InputModalities) == 0 {
			m.InputModalities = d.Architecture.InputModalities
		}
		if len(m.OutputModalities) == 0 {
			m.OutputModalities = d.Architecture.OutputModalities
		}
		out[i] = m
	}
	return out, nil
}
