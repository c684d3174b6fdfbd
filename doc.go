// Package inference is a client for the Hugging Face Inference Providers
// router (https://router.huggingface.co) that keeps an application answering
// when a token, a model or a provider fails, and says exactly why when it
// cannot.
//
// # Calling a model
//
//	c, err := inference.NewClient() // token from HF_TOKEN or `hf auth login`
//	resp, err := c.Chat(ctx, inference.ChatRequest{
//		Model:    "meta-llama/Llama-3.3-70B-Instruct",
//		Provider: "together", // or "" / "auto" for the router's choice
//		Messages: []inference.Message{inference.UserMessage("Hello")},
//	})
//	fmt.Println(resp.Text(), resp.Provider)
//
// The other operations share the same walk, token chain, kinds, retries,
// cooldowns, per-call options and observer: [Client.Embed],
// [Client.Respond] (the Responses API), and images and audio,
// [Client.TextToImage], [Client.Transcribe] and [Client.Speak], which walk
// a model's providers for the task and run a provider's queued job
// (fal-ai, Replicate, ...) as one attempt: polled through the router,
// cancelled at the provider when the caller stops waiting.
//
// # Errors
//
// Every failure matches exactly one kind with [errors.Is]: [ErrNoToken],
// [ErrInvalidToken], [ErrUnauthorized], [ErrMissingScope], [ErrGatedModel],
// [ErrModelNotFound], [ErrModelNotSupported], [ErrPaymentRequired],
// [ErrRateLimited], [ErrInvalidRequest], [ErrProvider], [ErrContextLength]
// or [ErrStream].
// [errors.As] with an [*APIError] gives the status, the server's message, the
// request id to quote to support, the provider and how long to wait. Error
// text says what happened and what to do, such as which OAuth scope or token
// permission is missing. A [*FallbackError] matches the kind of the attempt
// that ended the walk, its last; the others are in its Attempts. A
// [*JSONDecodeError] matches [ErrProvider]. Only a cancelled or expired
// context gives no kind: the error then matches [context.Canceled] or
// [context.DeadlineExceeded].
//
// # Tokens
//
// A [TokenSource] yields the token: [StaticToken], [EnvToken] (the default,
// in huggingface_hub's order, renewing a browser login that `hf auth login`
// stored), [OAuthToken] for a user logged in with Hugging Face OAuth,
// [OIDCToken] for a CI job without a secret (Trusted Publishers), and
// [ChainTokens] to try several. [DeviceLogin] logs a user in from a
// terminal, as `hf auth login` does. Tokens are checked before anything is
// sent, are sent only to the router and the Hub, and never appear in
// errors, logs or printed values, even when a server echoes them.
//
// # Transport
//
// Each HTTP attempt passes through the client's logging, then the
// [Middleware] values given to [WithMiddleware] in order, then the
// authentication step, then the transport. Retries are bounded by a
// [RetryPolicy] and honour Retry-After; cancelling the context stops
// everything at once.
//
// # Where to go next
//
// The package [github.com/hfkit/inference/inferencetest] is a fake router
// and Hub for your own tests: script each model's answers (a reply, a
// gated 403, a provider's 502, a stream cut mid-way) and assert what your
// code does, offline. The examples folder runs as it is, against that
// fake router, with no token and no network: quickstart, fallback, errors,
// streaming (with recovery), embeddings (a provider fallback and cosine
// ranking), responses (a function call round trip through the Responses
// API), images (a failed job, then a queued one reported at each poll, the
// image written to a file), transcribe (a recording and its timed chunks),
// oauth (a Space with Hugging Face login), devicelogin (a terminal login as
// `hf auth login` does it, against a fake Hub) and otel (OpenTelemetry
// spans); fleet (cooldowns shared through Redis) needs a Redis as well
// (REDIS_URL), and without one says so and exits. The README has the
// failure kinds, the fallback policy and the measured numbers;
// CONTRIBUTING.md follows a call through the code.
package inference
