// Command oauth is a small web app that logs users in with Hugging Face
// OAuth (scopes "openid profile inference-api") and chats with each user's
// token through one shared client: the user's token goes with the call
// (WithUserTokenSource), before the app's HF_TOKEN, so that if it lacks the
// inference-api scope the call falls back to HF_TOKEN and says so. Every
// user shares the client's connection pool and cooldowns; no user's token
// ever reaches another's calls.
//
// Offline by default: it prints the login URL it would send a user to, then
// runs one chat against a local fake router with a scope-less OAuth token,
// showing the fallback to HF_TOKEN. With -serve it runs the web app, using
// a Space's OAuth variables (OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET,
// OAUTH_SCOPES, SPACE_HOST), and calls the real router.
//
//	go run ./examples/oauth
//	go run ./examples/oauth -serve -addr :7860   # inside a Space with hf_oauth: true
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

const model = "meta-llama/Llama-3.3-70B-Instruct"

func main() {
	serve := flag.Bool("serve", false, "run the web app (needs a Space's OAuth variables)")
	addr := flag.String("addr", ":7860", "address to serve on with -serve")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if !*serve {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := offline(ctx, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	space, err := inference.SpaceOAuthConfig()
	if err != nil {
		logger.Error("oauth setup", "error", err)
		os.Exit(1)
	}
	for _, w := range space.Warnings {
		logger.Warn(w) // caught before any user logs in
	}
	a, err := newApp(space.Config, logger)
	if err != nil {
		logger.Error("client setup", "error", err)
		os.Exit(1)
	}
	logger.Info("serving", "addr", *addr)
	srv := &http.Server{Addr: *addr, Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("serve", "error", err)
		os.Exit(1)
	}
}

// offline shows the login URL and the token fallback without a network.
func offline(ctx context.Context, out io.Writer) error {
	cfg := inference.OAuthConfig("your-space-client-id", "", "http://localhost:7860/login/callback")
	fmt.Fprintln(out, "a user would log in at:")
	fmt.Fprintln(out, " ", cfg.AuthCodeURL("STATE", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))

	const scopeless = "hf_oauth_UserLoggedInWithoutInferenceScope"
	router := inferencetest.NewRouter()
	defer router.Close()
	router.ForToken(scopeless, inferencetest.MissingScope())
	router.On(model, inferencetest.Reply("Hello! I answered with the Space's HF_TOKEN."))
	// Offline, HF_TOKEN is the fake router's token.
	if err := os.Setenv("HF_TOKEN", inferencetest.Token); err != nil {
		return err
	}

	userToken := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: scopeless, Expiry: time.Now().Add(8 * time.Hour)})
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	}))
	// One client for the app, with the app's HF_TOKEN; each call brings its
	// user's token.
	client, err := inference.NewClient(inference.WithBaseURL(router.URL()), inference.WithHubURL(router.URL()), inference.WithLogger(logger))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nchatting with a user token that lacks the inference-api scope:")
	resp, err := client.Chat(ctx, inference.ChatRequest{Model: model, Messages: []inference.Message{inference.UserMessage("Hello!")}},
		inference.WithUserTokenSource(inference.OAuthToken(userToken)))
	if err != nil {
		return err
	}
	fmt.Fprintln(out, resp.Text())
	for i, a := range resp.Attempts {
		outcome := "served"
		if a.Err != nil {
			outcome = fmt.Sprint(a.Kind())
		}
		fmt.Fprintf(out, "  attempt %d with the token from %s: HTTP %d, %s\n", i+1, a.TokenSource, a.StatusCode, outcome)
	}
	return nil
}

// app is the web app: a login flow and a chat page. One client serves
// every user: its connection pool and its memory of failing candidates are
// shared, and each call carries its user's token.
type app struct {
	oauth  *oauth2.Config
	client *inference.Client
	logger *slog.Logger

	mu       sync.Mutex
	pending  map[string]string             // login state → PKCE verifier
	sessions map[string]oauth2.TokenSource // session → the user's token
}

// newApp makes the app and its one client: the app's own token is
// HF_TOKEN; clientOpts configure the client further.
func newApp(cfg *oauth2.Config, logger *slog.Logger, clientOpts ...inference.Option) (*app, error) {
	client, err := inference.NewClient(append([]inference.Option{inference.WithLogger(logger)}, clientOpts...)...)
	if err != nil {
		return nil, err
	}
	return &app{
		oauth: cfg, client: client, logger: logger,
		pending: map[string]string{}, sessions: map[string]oauth2.TokenSource{},
	}, nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /login/callback", a.callback)
	mux.HandleFunc("GET /chat", a.chat)
	return mux
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	if a.session(r) == nil {
		fmt.Fprint(w, `<a href="/login">Sign in with Hugging Face</a>`)
		return
	}
	fmt.Fprint(w, `<form action="/chat"><input name="q"><button>Ask</button></form>`)
}

func (a *app) login(w http.ResponseWriter, r *http.Request) {
	state, verifier := randomID(), oauth2.GenerateVerifier()
	a.mu.Lock()
	a.pending[state] = verifier
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "login_state", Value: state, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (a *app) callback(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	cookie, err := r.Cookie("login_state")
	a.mu.Lock()
	verifier, ok := a.pending[state]
	delete(a.pending, state)
	a.mu.Unlock()
	if err != nil || !ok || cookie.Value != state {
		http.Error(w, "login expired or forged: start again at /login", http.StatusBadRequest)
		return
	}
	tok, err := a.oauth.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			a.logger.Warn("oauth exchange failed", "code", re.ErrorCode) // never the response body
		}
		http.Error(w, "login failed: start again at /login", http.StatusBadGateway)
		return
	}
	// The token source refreshes the user's token through the Hub; each of
	// the user's calls tries it first and falls back to the Space's
	// HF_TOKEN.
	userTS := oauth2.ReuseTokenSource(tok, a.oauth.TokenSource(context.WithoutCancel(r.Context()), tok))
	id := randomID()
	a.mu.Lock()
	a.sessions[id] = userTS
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "session", Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusFound)
}

func (a *app) session(r *http.Request) oauth2.TokenSource {
	c, err := r.Cookie("session")
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[c.Value]
}

func (a *app) chat(w http.ResponseWriter, r *http.Request) {
	userTS := a.session(r)
	if userTS == nil {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	resp, err := a.client.Chat(r.Context(), inference.ChatRequest{
		Model:    model,
		Messages: []inference.Message{inference.UserMessage(r.URL.Query().Get("q"))},
	}, inference.WithUserTokenSource(inference.OAuthToken(userTS)))
	if err != nil {
		// The error text names the fix (scope, access, credits) and never
		// the token.
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(w, "<p>%s</p>", html.EscapeString(resp.Text()))
}
