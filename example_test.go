package inference_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
)

// fakeRouter answers every chat request with the given status, headers and
// body, standing in for router.huggingface.co so the examples run offline.
func fakeRouter(status int, headers map[string]string, body string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
}

func ExampleClient_Chat() {
	router := fakeRouter(200, map[string]string{"X-Inference-Provider": "together"},
		`{"id":"c1","model":"meta-llama/Llama-3.3-70B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour !"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}`)
	defer router.Close()

	c, err := inference.NewClient(
		inference.WithBaseURL(router.URL), // omit to call https://router.huggingface.co
		inference.WithToken("hf_ExampleTokenxxxxxxxxxxxxxxxxxxxxxxxx"),
	)
	if err != nil {
		panic(err)
	}
	resp, err := c.Chat(context.Background(), inference.ChatRequest{
		Model:    "meta-llama/Llama-3.3-70B-Instruct",
		Provider: "together",
		Messages: []inference.Message{inference.UserMessage("Say hello in French.")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text())
	fmt.Println("served by", resp.Provider, "using", resp.Usage.TotalTokens, "tokens")
	// Output:
	// Bonjour !
	// served by together using 12 tokens
}

func ExampleAPIError() {
	router := fakeRouter(403, map[string]string{"X-Request-Id": "Xb3kP0aQ9mZt2LcV"},
		`{"error":"This authentication method does not have sufficient permissions to call Inference Providers on behalf of user alice"}`)
	defer router.Close()

	c, _ := inference.NewClient(inference.WithBaseURL(router.URL), inference.WithToken("hf_oauth_ExampleTokenxxxxxxxxxxxxxxxxxxx"))
	_, err := c.Chat(context.Background(), inference.ChatRequest{
		Model:    "Qwen/Qwen3-Next-80B-A3B-Thinking",
		Messages: []inference.Message{inference.UserMessage("hi")},
	})

	switch {
	case errors.Is(err, inference.ErrMissingScope):
		fmt.Println("ask the user to log in again with the inference-api scope")
	case errors.Is(err, inference.ErrGatedModel):
		fmt.Println("link the model page to request access")
	}
	var apiErr *inference.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.RequestID)
	}
	// Output:
	// ask the user to log in again with the inference-api scope
	// 403 Xb3kP0aQ9mZt2LcV
}

func ExampleChainTokens() {
	// In a Space with Hugging Face login, userTS comes from the OAuth flow;
	// HF_TOKEN is used when the user's token is missing or refused.
	userTS := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "hf_oauth_ExampleTokenxxxxxxxxxxxxxxxxxxx"})
	src := inference.ChainTokens(inference.OAuthToken(userTS), inference.EnvToken())

	tok, err := src.Token(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Println(src)
	fmt.Println(tok) // never the token itself
	// Output:
	// ChainTokens(OAuthToken, EnvToken)
	// Token(oauth hf_oauth_Ex…)
}

func ExampleNewToken() {
	_, err := inference.NewToken("<gradio.oauth.OAuthToken object at 0x7f3b2c1d0e50>", "gradio")
	fmt.Println(errors.Is(err, inference.ErrInvalidToken))
	fmt.Println(err)
	// Output:
	// true
	// inference: the token is not a valid Hugging Face token from gradio: it looks like a printed object, not the token string: pass the token's text (in Gradio, oauth_token.token)
}

func ExampleNewCitation() {
	c, err := inference.NewCitation("Attention Is All You Need", "https://arxiv.org/abs/1706.03762")
	if err != nil {
		panic(err)
	}
	c.Authors = []string{"Vaswani", "Shazeer", "Parmar", "Uszkoreit"}
	c.Date = "2017"
	fmt.Println(c)

	_, err = inference.NewCitation("No link", "arxiv.org/abs/1706.03762")
	fmt.Println(err)
	// Output:
	// Vaswani, Shazeer, Parmar et al. (2017). Attention Is All You Need. https://arxiv.org/abs/1706.03762
	// inference: citation URL "arxiv.org/abs/1706.03762" is not an absolute http or https URL
}

func ExampleWithFallback() {
	// A fake router: the first model is gated, the second is served.
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"model":"ardent-figment/gated-model"`) {
			w.Header().Set("X-Error-Code", "GatedRepo")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":"Access to model ardent-figment/gated-model is restricted and you are not in the authorized list."}`)
			return
		}
		w.Header().Set("X-Inference-Provider", "together")
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi from the fallback."},"finish_reason":"stop"}]}`)
	}))
	defer router.Close()

	c, _ := inference.NewClient(
		inference.WithBaseURL(router.URL),
		inference.WithToken("hf_ExampleTokenxxxxxxxxxxxxxxxxxxxxxxxx"),
		inference.WithFallback(inference.Candidate{Model: "meta-llama/Llama-3.3-70B-Instruct", Provider: "together"}),
	)
	resp, err := c.Chat(context.Background(), inference.ChatRequest{
		Model:    "ardent-figment/gated-model",
		Messages: []inference.Message{inference.UserMessage("hi")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text())
	for _, a := range resp.Attempts {
		fmt.Printf("%s: status %d, kind %v\n", a.Candidate, a.StatusCode, a.Kind())
	}
	// Output:
	// Hi from the fallback.
	// ardent-figment/gated-model: status 403, kind inference: the model is gated
	// meta-llama/Llama-3.3-70B-Instruct:together: status 200, kind <nil>
}
