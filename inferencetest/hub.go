package inferencetest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// HubUser is who a token belongs to, as the fake Hub's /api/whoami-v2
// tells it.
type HubUser struct {
	// Name is the user's name.
	Name string
	// Orgs are the user's organizations.
	Orgs []string
	// OAuth marks an OAuth token: the Hub shows no role, no token name and
	// no scopes for it.
	OAuth bool
	// Role is an access token's role: "read", "write" or "fineGrained".
	// Empty means "read".
	Role string
	// Permissions are a fine-grained token's global permissions, such as
	// "inference.serverless.write".
	Permissions []string
	// TokenName is the access token's display name.
	TokenName string
}

// HubModel is a model as the fake Hub's /api/models/{id} tells it.
type HubModel struct {
	// ID is the model id, such as "org/model".
	ID string
	// Gated is "", "auto" or "manual".
	Gated string
	// PipelineTag is the task, such as "text-generation".
	PipelineTag string
	// Providers map the model, in order.
	Providers []HubProvider
}

// HubProvider is one provider's mapping of a HubModel.
type HubProvider struct {
	// Name is the provider, such as "together".
	Name string
	// Status is "live" or "staging".
	Status string
	// ProviderID is the provider's own model id.
	ProviderID string
	// Task is the task the provider serves the model for; "" means
	// "feature-extraction" for a model whose PipelineTag is
	// feature-extraction or sentence-similarity, the PipelineTag itself
	// for text-to-image, automatic-speech-recognition and text-to-speech,
	// else "conversational".
	Task string
}

// AddUser makes the fake Hub's whoami answer for token. Tokens without a
// user get the Hub's 401.
func (r *Router) AddUser(token string, u HubUser) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[string]HubUser{}
	}
	r.users[token] = u
	return r
}

// AddModel makes the fake Hub know a model. Unknown models get the Hub's
// 404 with X-Error-Code: RepoNotFound.
func (r *Router) AddModel(m HubModel) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.models == nil {
		r.models = map[string]HubModel{}
	}
	r.models[m.ID] = m
	return r
}

// serveHub answers the Hub endpoints the library calls; it reports false
// for other paths.
func (r *Router) serveHub(w http.ResponseWriter, hr *http.Request) bool {
	if hr.Method != http.MethodGet {
		return false
	}
	token := strings.TrimPrefix(hr.Header.Get("Authorization"), "Bearer ")
	switch {
	case hr.URL.Path == "/api/whoami-v2":
		r.mu.Lock()
		u, ok := r.users[token]
		r.mu.Unlock()
		if !ok || token == "" {
			InvalidToken()(w, &Request{HTTP: hr})
			return true
		}
		writeJSON(w, whoamiJSON(u))
		return true
	case strings.HasPrefix(hr.URL.Path, "/api/models/"):
		id := strings.TrimPrefix(hr.URL.Path, "/api/models/")
		r.mu.Lock()
		m, ok := r.models[id]
		r.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Error-Code", "RepoNotFound")
			w.Header().Set("X-Request-Id", "hub-404")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"Repository not found"}`))
			return true
		}
		writeJSON(w, modelJSON(m))
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// whoamiJSON renders a user in the Hub's whoami-v2 shape.
func whoamiJSON(u HubUser) map[string]any {
	orgs := make([]map[string]string, len(u.Orgs))
	for i, o := range u.Orgs {
		orgs[i] = map[string]string{"name": o}
	}
	out := map[string]any{"type": "user", "name": u.Name, "fullname": u.Name, "orgs": orgs}
	if u.OAuth {
		out["auth"] = map[string]any{"type": "oauth", "expiresAt": "2026-12-31T00:00:00.000Z"}
		return out
	}
	role := u.Role
	if role == "" {
		role = "read"
	}
	token := map[string]any{"displayName": u.TokenName, "role": role, "createdAt": "2026-01-01T00:00:00.000Z"}
	if role == "fineGrained" {
		perms := u.Permissions
		if perms == nil {
			perms = []string{}
		}
		token["fineGrained"] = map[string]any{"canReadGatedRepos": true, "global": perms, "scoped": []any{}}
	}
	out["auth"] = map[string]any{"type": "access_token", "accessToken": token}
	return out
}

// modelJSON renders a model with its provider mapping, as the Hub's object
// keyed by provider.
func modelJSON(m HubModel) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"id":`)
	writeString(&b, m.ID)
	b.WriteString(`,"gated":`)
	if m.Gated == "" {
		b.WriteString("false")
	} else {
		writeString(&b, m.Gated)
	}
	b.WriteString(`,"pipeline_tag":`)
	writeString(&b, m.PipelineTag)
	b.WriteString(`,"inferenceProviderMapping":{`)
	for i, p := range m.Providers {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, p.Name)
		b.WriteString(`:{"status":`)
		writeString(&b, p.Status)
		b.WriteString(`,"providerId":`)
		writeString(&b, p.ProviderID)
		task := p.Task
		if task == "" {
			switch m.PipelineTag {
			case "feature-extraction", "sentence-similarity":
				task = "feature-extraction"
			case "text-to-image", "automatic-speech-recognition", "text-to-speech":
				task = m.PipelineTag
			default:
				task = "conversational"
			}
		}
		b.WriteString(`,"task":`)
		writeString(&b, task)
		b.WriteByte('}')
	}
	b.WriteString("}}")
	return json.RawMessage(b.String())
}

func writeString(b *strings.Builder, s string) {
	q, _ := json.Marshal(s)
	b.Write(q)
}
