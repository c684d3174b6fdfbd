package inferencetest

import (
	"net/http"

	"github.com/hfkit/inference"
)

// List sets the fake router's model list (GET /v1/models), served in the
// router's JSON shape. Without it the list is empty.
func (r *Router) List(models ...inference.RouterModel) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listed = append([]inference.RouterModel(nil), models...)
	return r
}

// ListAnswer makes GET /v1/models answer with a instead of the list, to
// test a failing discovery; nil restores the list.
func (r *Router) ListAnswer(a Answer) *Router {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listAnswer = a
	return r
}

// ListRequests reports how many times the model list was asked for.
func (r *Router) ListRequests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listRequests
}

// serveList answers GET /v1/models; it reports false for other requests.
func (r *Router) serveList(w http.ResponseWriter, hr *http.Request) bool {
	if hr.Method != http.MethodGet || hr.URL.Path != "/v1/models" {
		return false
	}
	r.mu.Lock()
	r.listRequests++
	answer, models := r.listAnswer, r.listed
	r.mu.Unlock()
	if answer != nil {
		answer(w, &Request{HTTP: hr})
		return true
	}
	data := make([]map[string]any, len(models))
	for i, m := range models {
		data[i] = map[string]any{
			"id": m.ID, "object": "model", "created": m.Created, "owned_by": m.OwnedBy,
			"architecture": map[string]any{"input_modalities": m.InputModalities, "output_modalities": m.OutputModalities},
			"providers":    m.Providers,
		}
	}
	writeJSON(w, map[string]any{"object": "list", "data": data})
	return true
}
