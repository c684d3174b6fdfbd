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
// in huggingface_hub's order), [OAuthToken] for a user logged in with
// Hugging Face OAuth, and [ChainTokens] to try several. Tokens are checked
// before anything is sent, are sent only to the router and the Hub, and never
// appear in errors, logs or printed values, even when a server echoes them.
//
// # Transport
//
// Each HTTP attempt passes through the client's logging, then the
// [Middleware] values given to [WithMiddleware] in order, then the
// authentication step, then the transport. Retries are bounded by a
// [RetryPolicy] and honour Retry-After; cancelling the context stops
// everything at once.
//
// # How a call flows
//
// For contributors, each step and its file:
//
//  1. [Client.Chat] (chat.go) or [Client.ChatStream] (stream.go) checks the
//     request (request.go, message.go, candidate.go) and lays the call's
//     options over the client's (call.go); an [Observer] (observer.go)
//     hears of it from here on.
//  2. walk (fallback.go) lists the candidates (normalised once, in
//     candidate.go), expands [ProviderEvery] into providers (providers.go,
//     from the router's list in models.go), skips those cooling down
//     (cooldown.go, or a shared [CooldownStore]), and takes tokens from the
//     token cursor (token.go).
//  3. An attempt (chat.go's attempt, stream.go's openStream; attempt.go
//     holds the [Attempt] record) encodes the body for one candidate and
//     calls send (exchange.go), the one path of every HTTP call, router
//     and Hub alike.
//  4. send goes through go-retryablehttp (retry.go: which answers are
//     retried, how long to wait), which calls the middleware chain
//     (transport.go: logging, the user's middlewares, authentication) and
//     the http.Transport.
//  5. A non-2xx answer is read up to a cap and classified once (classify.go,
//     into the kinds of errors.go); a 2xx that is not what was asked for is
//     exchange.go's notWhatWasAsked; a completion or a chunk is decoded by
//     decode.go (a fast reader, then encoding/json), a stream's events by
//     internal/sse, and its chunks are joined by accumulator.go. A stream
//     that breaks after content resumes the walk (recovery.go, with
//     [WithStreamRecovery]).
//  6. The walk's policy (fallback.go) decides from the kind: stop, the next
//     candidate, or the next token source. Text for people is rendered in
//     errors.go, from server text that text.go cleans.
package inference
