package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// maxHubBody bounds a Hub answer; whoami and model info are small.
const maxHubBody = 4 << 20

// PermissionInferenceProviders is the fine-grained token permission that
// lets a token call Inference Providers, shown as "Make calls to Inference
// Providers" in the token settings.
const PermissionInferenceProviders = "inference.serverless.write"

// Capability is a yes, no or unknown answer about a token.
type Capability int

const (
	// CapabilityUnknown means the Hub does not say: OAuth tokens do not expose
	// their scopes.
	CapabilityUnknown Capability = iota
	// CapabilityYes means the token has what is asked.
	CapabilityYes
	// CapabilityNo means the token lacks it.
	CapabilityNo
)

// String returns "unknown", "yes" or "no".
func (c Capability) String() string {
	switch c {
	case CapabilityYes:
		return "yes"
	case CapabilityNo:
		return "no"
	}
	return "unknown"
}

// MarshalText encodes the capability as its String.
func (c Capability) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// WhoAmI is what the Hub says about a token and its user
// (GET /api/whoami-v2).
type WhoAmI struct {
	// Name is the user's (or organization's) name.
	Name string `json:"name"`
	// Type is "user", "org" or, for some OAuth tokens, "oauth".
	Type string `json:"type"`
	// Fullname is the display name, when given.
	Fullname string `json:"fullname,omitempty"`
	// Orgs are the names of the user's organizations.
	Orgs []string `json:"orgs,omitempty"`
	// TokenKind is how the token authenticates: "access_token",
	// "app_token", "app_token_as_user" or "oauth".
	TokenKind string `json:"token_kind"`
	// TokenName is the access token's display name; OAuth tokens have none.
	TokenName string `json:"token_name,omitempty"`
	// Role is the access token's role: "read", "write", "admin",
	// "contributor" or "fineGrained"; empty for OAuth tokens.
	Role string `json:"role,omitempty"`
	// Permissions are a fine-grained token's global permissions, such as
	// "inference.serverless.write".
	Permissions []string `json:"permissions,omitempty"`
	// Scoped are a fine-grained token's permissions on named users and
	// organizations.
	Scoped []ScopedPermissions `json:"scoped,omitempty"`
	// Expires is when the token expires, when the Hub says.
	Expires time.Time `json:"expires,omitzero"`
	// CanCallInference says whether the token may call Inference
	// Providers: Yes for the "inference.serverless.write" permission or a
	// classic read or write role, No for a fine-grained token without it,
	// Unknown for OAuth tokens, whose scopes the Hub does not show.
	CanCallInference Capability `json:"can_call_inference"`
}

// OAuth reports whether the token is an OAuth token.
func (w *WhoAmI) OAuth() bool { return w.TokenKind == "oauth" }

// ScopedPermissions are a fine-grained token's permissions on one entity.
type ScopedPermissions struct {
	// Entity is "user/NAME" or "org/NAME".
	Entity      string   `json:"entity"`
	Permissions []string `json:"permissions"`
}

// whoamiWire is the shape of /api/whoami-v2 (testdata/README.md).
type whoamiWire struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Fullname  string `json:"fullname"`
	ExpiresAt string `json:"expiresAt"`
	Orgs      []struct {
		Name string `json:"name"`
	} `json:"orgs"`
	Auth struct {
		Type        string `json:"type"`
		ExpiresAt   string `json:"expiresAt"`
		AccessToken struct {
			DisplayName string `json:"displayName"`
			Role        string `json:"role"`
			Expiration  string `json:"expiration"`
			FineGrained struct {
				Global []string `json:"global"`
				Scoped []struct {
					Entity struct {
						Type string `json:"type"`
						Name string `json:"name"`
					} `json:"entity"`
					Permissions []string `json:"permissions"`
				} `json:"scoped"`
			} `json:"fineGrained"`
		} `json:"accessToken"`
	} `json:"auth"`
}

// Whoami asks the Hub who the client's token belongs to and what it may
// do. With a ChainTokens source it asks about the first valid token.
// Failures are classified like Chat's: an invalid token is
// [ErrUnauthorized].
func (c *Client) Whoami(ctx context.Context) (*WhoAmI, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	tok, err := c.firstToken(ctx)
	if err != nil {
		return nil, err
	}
	return c.whoami(ctx, tok)
}

func (c *Client) whoami(ctx context.Context, tok Token) (*WhoAmI, error) {
	var w whoamiWire
	if err := c.hubGet(ctx, tok, "/api/whoami-v2", Candidate{}, &w, nil); err != nil {
		return nil, err
	}
	out := &WhoAmI{
		Name: w.Name, Type: w.Type, Fullname: w.Fullname,
		TokenKind: w.Auth.Type, TokenName: w.Auth.AccessToken.DisplayName, Role: w.Auth.AccessToken.Role,
		Permissions: w.Auth.AccessToken.FineGrained.Global,
	}
	for _, o := range w.Orgs {
		out.Orgs = append(out.Orgs, o.Name)
	}
	for _, s := range w.Auth.AccessToken.FineGrained.Scoped {
		out.Scoped = append(out.Scoped, ScopedPermissions{Entity: s.Entity.Type + "/" + s.Entity.Name, Permissions: s.Permissions})
	}
	// OAuth tokens show no role and no token name, and sometimes say so
	// in the type fields.
	if out.TokenKind == "" && (w.Type == "oauth" || tok.OAuth) {
		out.TokenKind = "oauth"
	}
	for _, v := range []string{w.Auth.ExpiresAt, w.Auth.AccessToken.Expiration, w.ExpiresAt} {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			out.Expires = t
			break
		}
	}
	out.CanCallInference = inferenceCapability(out)
	return out, nil
}

// inferenceCapability applies the Hub's documented rules: classic tokens
// may call Inference Providers, fine-grained ones need the permission
// (globally or on the user), OAuth tokens cannot be told from the outside.
func inferenceCapability(w *WhoAmI) Capability {
	switch {
	case w.OAuth():
		return CapabilityUnknown
	case w.Role == "fineGrained":
		if slices.Contains(w.Permissions, PermissionInferenceProviders) {
			return CapabilityYes
		}
		for _, s := range w.Scoped {
			if s.Entity == "user/"+w.Name && slices.Contains(s.Permissions, PermissionInferenceProviders) {
				return CapabilityYes
			}
		}
		return CapabilityNo
	case w.Role == "read", w.Role == "write", w.Role == "admin", w.Role == "contributor":
		return CapabilityYes
	}
	return CapabilityUnknown
}

// ModelInfo is what the Hub says about a model (GET /api/models/{id}).
type ModelInfo struct {
	// ID is the model's id, such as "meta-llama/Llama-3.3-70B-Instruct".
	ID string `json:"id"`
	// Gated is "" for a model anyone may use, "auto" when access is
	// granted on request, "manual" when the owner approves each user.
	Gated string `json:"gated,omitempty"`
	// PipelineTag is the model's task, such as "text-generation".
	PipelineTag string `json:"pipeline_tag,omitempty"`
	// Providers are the Inference Providers that map the model, in the
	// Hub's order.
	Providers []ProviderMapping `json:"providers"`
}

// ProviderMapping is one provider's mapping of a model.
type ProviderMapping struct {
	// Provider is the provider's name, such as "together".
	Provider string `json:"provider"`
	// Status is "live", or "staging" while the provider is tested.
	Status string `json:"status"`
	// ProviderID is the provider's own id for the model.
	ProviderID string `json:"provider_id,omitempty"`
	// Task is the task the provider serves, such as "conversational".
	Task string `json:"task,omitempty"`
}

// LiveProviders returns the providers whose status is "live".
func (m *ModelInfo) LiveProviders() []ProviderMapping {
	var out []ProviderMapping
	for _, p := range m.Providers {
		if p.Status == "live" {
			out = append(out, p)
		}
	}
	return out
}

// HubModel asks the Hub about a model: whether it exists, whether it is
// gated, and which providers serve it. A missing or private model is
// [ErrModelNotFound].
func (c *Client) HubModel(ctx context.Context, id string) (*ModelInfo, error) {
	if err := c.usable(ctx); err != nil {
		return nil, err
	}
	if err := checkName("model", id, true); err != nil || id == "" || strings.Contains(id, ":") {
		return nil, invalidRequest("%q is not a model id", id)
	}
	tok, err := c.firstToken(ctx)
	if err != nil {
		return nil, err
	}
	return c.model(ctx, tok, id)
}

func (c *Client) model(ctx context.Context, tok Token, id string) (*ModelInfo, error) {
	var w struct {
		ID          string          `json:"id"`
		Gated       json.RawMessage `json:"gated"`
		PipelineTag string          `json:"pipeline_tag"`
		Mapping     json.RawMessage `json:"inferenceProviderMapping"`
	}
	path := "/api/models/" + escapeModelID(id) + "?expand%5B%5D=gated&expand%5B%5D=pipeline_tag&expand%5B%5D=inferenceProviderMapping"
	var providers []ProviderMapping
	readMapping := func() (err error) {
		if providers, err = providerMappings(w.Mapping); err != nil {
			return fmt.Errorf("its inferenceProviderMapping is not readable: %w", err)
		}
		return nil
	}
	if err := c.hubGet(ctx, tok, path, Candidate{Model: id}, &w, readMapping); err != nil {
		return nil, err
	}
	out := &ModelInfo{ID: w.ID, PipelineTag: w.PipelineTag, Providers: providers}
	if out.ID == "" {
		out.ID = id
	}
	if g := jsonText(w.Gated); g != "false" {
		out.Gated = g
	}
	return out, nil
}

// escapeModelID escapes each part of "org/name" for a URL path.
func escapeModelID(id string) string {
	parts := strings.Split(id, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// providerMappings reads both forms the Hub uses: an object keyed by
// provider, in the Hub's order, or an array of entries.
func providerMappings(raw json.RawMessage) ([]ProviderMapping, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	type entry struct {
		Provider   string `json:"provider"`
		Status     string `json:"status"`
		ProviderID string `json:"providerId"`
		Task       string `json:"task"`
	}
	convert := func(name string, e entry) ProviderMapping {
		if e.Provider != "" {
			name = e.Provider
		}
		return ProviderMapping{Provider: name, Status: e.Status, ProviderID: e.ProviderID, Task: e.Task}
	}
	if raw[0] == '[' {
		var list []entry
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		out := make([]ProviderMapping, 0, len(list))
		for _, e := range list {
			out = append(out, convert("", e))
		}
		return out, nil
	}
	// An object: walk it token by token to keep the Hub's order, which is
	// the user's preference order.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var out []ProviderMapping
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var e entry
		if err := dec.Decode(&e); err != nil {
			return nil, err
		}
		name, _ := key.(string)
		out = append(out, convert(name, e))
	}
	return out, nil
}

// hubNotNamed is the refusal of a client whose router is on this machine
// (a test's fake, or a local proxy) and whose Hub is the public default
// because none was named: nothing goes to the public Hub, neither the
// client's Hub calls nor a login's renewal or exchange, so that a test's
// token never leaves the machine.
func hubNotNamed(router, hub *url.URL) error {
	return invalidRequest("the router is on this machine (%s) and no Hub was named, so no token is sent to the public Hub (%s): "+
		"give WithHubURL the Hub to ask (a fake's URL in tests, as inferencetest's Router.Client does), or WithHubURL(%q) to ask the public Hub",
		router, hub, defaultHubURL)
}

// hubGet GETs a Hub path with the token and decodes the JSON answer into
// out, then gives it to check, when not nil, for what JSON alone cannot
// tell.
func (c *Client) hubGet(ctx context.Context, tok Token, path string, about Candidate, out any, check func() error) error {
	if c.hubUnnamed {
		return hubNotNamed(c.base, c.hub)
	}
	err := c.get(ctx, tok, c.hub.String()+path, about, maxHubBody, "the Hub's answer is not the JSON expected", func(data []byte) error {
		if err := json.Unmarshal(data, out); err != nil {
			return err
		}
		if check != nil {
			return check()
		}
		return nil
	})
	var apiErr *APIError
	if errors.As(err, &apiErr) && about.Model != "" && apiErr.StatusCode == http.StatusUnauthorized &&
		apiErr.Kind == ErrUnauthorized && !strings.Contains(strings.ToLower(apiErr.Message), "invalid credentials") {
		// The Hub answers 401 for a repository the token may not see,
		// unless the token itself is bad (huggingface_hub does the same).
		apiErr.Kind = ErrModelNotFound
	}
	return err
}
