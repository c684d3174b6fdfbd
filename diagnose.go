package inference

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// CheckStatus is the outcome of one check of a [Diagnosis].
type CheckStatus string

// Check outcomes.
const (
	// CheckOK means the check passed.
	CheckOK CheckStatus = "ok"
	// CheckProblem means the check found what stops calls from working.
	CheckProblem CheckStatus = "problem"
	// CheckUnknown means the check could not tell.
	CheckUnknown CheckStatus = "unknown"
)

// Check is one step of a diagnosis: what was checked, what was found, and,
// for a problem, its cause and fix.
type Check struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	// Detail is what was found, such as the token's source or the
	// providers that serve a model.
	Detail string `json:"detail,omitempty"`
	// Cause explains a problem or an unknown.
	Cause string `json:"cause,omitempty"`
	// Fix says what to do about it.
	Fix string `json:"fix,omitempty"`
}

// Diagnosis is the report of [Client.Diagnose]. It never holds a token,
// only its source and a short prefix.
type Diagnosis struct {
	// User is the token's user, when the Hub said.
	User string `json:"user,omitempty"`
	// TokenSource is where the token came from, such as "HF_TOKEN".
	TokenSource string `json:"token_source,omitempty"`
	// TokenPrefix is the token's redacted prefix, such as "hf_Ab…".
	TokenPrefix string `json:"token_prefix,omitempty"`
	// OAuth reports whether the token is an OAuth token.
	OAuth bool `json:"oauth"`
	// Checks are the checks run, in order.
	Checks []Check `json:"checks"`
}

// OK reports whether no check found a problem.
func (d *Diagnosis) OK() bool { return len(d.Problems()) == 0 }

// Problems returns the checks that found a problem.
func (d *Diagnosis) Problems() []Check {
	var out []Check
	for _, c := range d.Checks {
		if c.Status == CheckProblem {
			out = append(out, c)
		}
	}
	return out
}

func (d *Diagnosis) add(c Check) { d.Checks = append(d.Checks, c) }

// confirmRefusal turns the unknown "may call Inference Providers" of the
// diagnosed token into a problem once the router has refused that token.
func (d *Diagnosis) confirmRefusal(a *Attempt) {
	if a.TokenSource != d.TokenSource || a.Kind() != ErrMissingScope {
		return
	}
	for i := range d.Checks {
		if c := &d.Checks[i]; c.Name == permissionCheckName && c.Status == CheckUnknown {
			c.Status = CheckProblem
			c.Cause = "the router refused this token: it lacks the inference-api scope"
		}
	}
}

// addOnce adds c unless a check of the same name is there.
func (d *Diagnosis) addOnce(c Check) {
	if !slices.ContainsFunc(d.Checks, func(x Check) bool { return x.Name == c.Name }) {
		d.add(c)
	}
}

// DiagnoseOptions says what to diagnose.
type DiagnoseOptions struct {
	// Models are the models to check, such as
	// "meta-llama/Llama-3.3-70B-Instruct".
	Models []string
	// Providers, if any, are checked for each model; otherwise the
	// router's choice is probed.
	Providers []string
	// NoProbe skips the 1-token chat that proves a model answers. Without
	// it, each probe costs a request (and a token) per model and provider.
	NoProbe bool
	// BillTo, when set, is an organization to bill the probes to
	// ([WithBillTo]); the diagnosis checks that the token's user is one of
	// its members.
	BillTo string
}

// Diagnose runs, in order, the checks of the troubleshooting of a 403 and
// reports each one's result, cause and fix: a token is found (and from which
// source), it is well formed, the Hub accepts it (whose it is, of what
// kind and role), it may call Inference Providers, and for each model: it
// exists, whether it is gated, which providers serve it, and, unless
// NoProbe, a 1-token chat whose failure is classified. Probes use the
// client's token sources and retry policy, but no fallback candidates; their
// failures cool candidates down as any call's do.
//
// Diagnose does not fail: what it could not learn is a check with status
// unknown.
func (c *Client) Diagnose(ctx context.Context, opts DiagnoseOptions) *Diagnosis {
	d := &Diagnosis{}
	if err := c.usable(ctx); err != nil {
		d.add(Check{Name: "client", Status: CheckProblem, Cause: err.Error(),
			Fix: "Make the client with NewClient and pass a non-nil context"})
		return d
	}
	hub := hubLinks(c.hub.String())

	tokens := c.newTokenCursor(&c.call, time.Now())
	tok, ok := tokens.advance(ctx)
	if !ok {
		err := tokens.failure(ctx)
		var apiErr *APIError
		switch {
		case errors.Is(err, ErrInvalidToken):
			d.add(Check{Name: "token is well formed", Status: CheckProblem, Cause: err.Error(),
				Fix: hintFor(ErrInvalidToken, hintFacts{})})
		case errors.As(err, &apiErr) && apiErr.Fix() != "":
			// A stored login whose renewal failed after it expired.
			d.add(Check{Name: "token found", Status: CheckProblem, Cause: apiErr.render(formCause), Fix: apiErr.Fix()})
		default:
			d.add(Check{Name: "token found", Status: CheckProblem, Cause: err.Error(),
				Fix: hintFor(ErrNoToken, hintFacts{hub: hub})})
		}
		return d
	}
	d.TokenSource, d.TokenPrefix, d.OAuth = tok.Source, tok.Redacted(), tok.OAuth
	kind := "access token"
	if tok.OAuth {
		kind = "OAuth token"
	}
	d.add(Check{Name: "token found", Status: CheckOK, Detail: fmt.Sprintf("%s from %s (%s)", kind, tok.Source, tok.Redacted())})
	for _, reason := range tokens.reasons {
		if strings.Contains(reason, ErrInvalidToken.Error()) {
			d.add(Check{Name: "other token sources", Status: CheckProblem, Cause: reason,
				Fix: hintFor(ErrInvalidToken, hintFacts{})})
		}
	}
	d.add(Check{Name: "token is well formed", Status: CheckOK})

	if opts.BillTo != "" {
		if err := checkOrg(opts.BillTo); err != nil {
			d.add(Check{Name: "organization to bill", Status: CheckProblem, Cause: err.Error(),
				Fix: "Give the organization's name as it appears in its Hub URL"})
			return d
		}
	}
	who, err := c.whoami(ctx, tok)
	switch {
	case err == nil:
		d.User = who.Name
		d.add(Check{Name: "token accepted by the Hub", Status: CheckOK, Detail: describeWhoami(who)})
		d.add(inferencePermissionCheck(who, hub))
		if opts.BillTo != "" {
			d.add(billToCheck(who, opts.BillTo, hub))
		}
	case errors.Is(err, ErrUnauthorized):
		d.add(Check{Name: "token accepted by the Hub", Status: CheckProblem, Cause: shortCause(err),
			Fix: hintFor(ErrUnauthorized, hintFacts{hub: hub, status: http.StatusUnauthorized})})
		return d
	case unreachable(err):
		d.add(c.unreachableHub("token accepted by the Hub", err))
	case errors.Is(err, ErrRateLimited):
		d.add(rateLimitedCheck("token accepted by the Hub", err))
	default:
		d.add(Check{Name: "token accepted by the Hub", Status: CheckUnknown, Cause: shortCause(err)})
	}

	for _, model := range opts.Models {
		c.diagnoseModel(ctx, d, tok, model, opts)
	}
	return d
}

// billToCheck checks that the token's user may bill the organization: the
// Hub lists the user's organizations.
func billToCheck(w *WhoAmI, org string, hub hubLinks) Check {
	c := Check{Name: "organization to bill: " + org}
	if slices.Contains(w.Orgs, org) {
		c.Status, c.Detail = CheckOK, w.Name+" is a member"
		return c
	}
	c.Status = CheckProblem
	c.Cause = w.Name + " is not a member of " + org + ", so calls billed to it are refused"
	if len(w.Orgs) > 0 {
		c.Cause += " (member of " + strings.Join(w.Orgs, ", ") + ")"
	}
	c.Fix = "Ask an admin of " + org + " to add " + w.Name + " at " + hub.orgSettings(org, "members") + ", or bill another organization"
	return c
}

// rateLimitedCheck is a Hub call the Hub rate-limited: the check waits for
// its window, and says how long.
func rateLimitedCheck(name string, err error) Check {
	var apiErr *APIError
	errors.As(err, &apiErr)
	c := Check{Name: name, Status: CheckUnknown, Cause: "the Hub rate-limited this check: " + shortCause(err)}
	c.Fix = "Run the diagnosis again later"
	if apiErr != nil && apiErr.RetryAfter > 0 {
		c.Fix = "Run the diagnosis again in " + apiErr.RetryAfter.String() + ", when the Hub's window resets"
	}
	return c
}

// unreachable reports a call that got no answer at all (refused, reset,
// no route, timed out), as opposed to an answer that said no.
func unreachable(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode == 0 && apiErr.Cause != nil
}

// unreachableHub is the check of a Hub call that got no answer: the Hub,
// not a provider, is what could not be reached.
func (c *Client) unreachableHub(name string, err error) Check {
	var apiErr *APIError
	errors.As(err, &apiErr)
	return Check{Name: name, Status: CheckUnknown,
		Cause: "the Hub at " + c.hub.String() + " cannot be reached: " + apiErr.Message,
		Fix:   "Check the network connection, or the Hub's URL (WithHubURL or HF_ENDPOINT; hfdoctor -hub-url)"}
}

func describeWhoami(w *WhoAmI) string {
	var b strings.Builder
	b.WriteString(w.Name)
	if w.OAuth() {
		b.WriteString(", OAuth token")
	} else {
		fmt.Fprintf(&b, ", access token %q with role %s", w.TokenName, w.Role)
	}
	if len(w.Orgs) > 0 {
		b.WriteString(", member of " + strings.Join(w.Orgs, ", "))
	}
	if !w.Expires.IsZero() {
		b.WriteString(", expires " + w.Expires.Format(time.RFC3339))
	}
	return b.String()
}

const permissionCheckName = "token may call Inference Providers"

func inferencePermissionCheck(w *WhoAmI, hub hubLinks) Check {
	c := Check{Name: permissionCheckName}
	switch w.CanCallInference {
	case CapabilityYes:
		c.Status = CheckOK
		if w.Role == "fineGrained" {
			c.Detail = "fine-grained token with \"Make calls to Inference Providers\""
		} else {
			c.Detail = w.Role + " token"
		}
	case CapabilityNo:
		c.Status = CheckProblem
		c.Cause = "this fine-grained token lacks the permission \"Make calls to Inference Providers\" (" + PermissionInferenceProviders + ")"
		c.Fix = "Create a fine-grained token with \"Make calls to Inference Providers\" at " + hub.fineGrainedToken() + ", or add the permission to this token"
	default:
		c.Status = CheckUnknown
		c.Cause = "OAuth tokens do not show their scopes; the probe tells for sure"
		c.Fix = "Make sure the app asks for " + scopeName + ", then log out and log back in"
	}
	return c
}

// diagnoseModel checks one model: existence, gating, providers, probes.
func (c *Client) diagnoseModel(ctx context.Context, d *Diagnosis, tok Token, model string, opts DiagnoseOptions) {
	hub := hubLinks(c.hub.String())
	info, err := c.model(ctx, tok, model)
	switch {
	case errors.Is(err, ErrModelNotFound):
		d.add(Check{Name: "model exists: " + model, Status: CheckProblem, Cause: shortCause(err),
			Fix: hintFor(ErrModelNotFound, hintFacts{hub: hub})})
		return
	case unreachable(err):
		d.add(c.unreachableHub("model exists: "+model, err))
	case errors.Is(err, ErrRateLimited):
		d.add(rateLimitedCheck("model exists: "+model, err))
	case err != nil:
		d.add(Check{Name: "model exists: " + model, Status: CheckUnknown, Cause: shortCause(err)})
	default:
		d.add(Check{Name: "model exists: " + model, Status: CheckOK, Detail: info.PipelineTag})
	}

	gated := -1 // index of the gating check, decided by the probe when gated
	if info != nil {
		if info.Gated == "" {
			d.add(Check{Name: "model access: " + model, Status: CheckOK, Detail: "not gated"})
		} else {
			gated = len(d.Checks)
			d.add(Check{Name: "model access: " + model, Status: CheckUnknown,
				Detail: "gated (" + info.Gated + " approval)",
				Cause:  "whether this user was granted access shows only when the model is called",
				Fix:    "If calls are refused, request access at " + hub.model(model) + " and wait for approval"})
		}
		d.add(providersCheck(info, hub))
		for _, p := range opts.Providers {
			if isPolicy(p) {
				continue
			}
			d.add(providerCheck(info, p, hub))
		}
	}

	if opts.NoProbe {
		return
	}
	providers := opts.Providers
	if len(providers) == 0 {
		providers = []string{""}
	}
	for _, p := range providers {
		check, refused, err := c.probe(ctx, Candidate{Model: model, Provider: p}, opts.BillTo)
		if refused != nil {
			d.addOnce(refusalCheck(refused))
			d.confirmRefusal(refused)
		}
		if gated >= 0 {
			switch {
			case err == nil:
				d.Checks[gated].Status, d.Checks[gated].Cause, d.Checks[gated].Fix = CheckOK, "", ""
				d.Checks[gated].Detail += "; this user has access"
			case errors.Is(err, ErrGatedModel):
				d.Checks[gated].Status = CheckProblem
				d.Checks[gated].Cause = "this user has not been granted access"
				d.Checks[gated].Fix = "Visit " + hub.model(model) + ", request access, and wait for approval; or use another model"
			}
		}
		d.add(check)
	}
}

func isPolicy(p string) bool {
	return p == "" || p == ProviderAuto || p == ProviderFastest || p == ProviderCheapest || p == ProviderPreferred
}

func providersCheck(info *ModelInfo, hub hubLinks) Check {
	c := Check{Name: "providers serving " + info.ID}
	if len(info.Providers) == 0 {
		c.Status = CheckProblem
		c.Cause = "no Inference Provider serves this model"
		c.Fix = "Pick a model that Inference Providers serve: " + hub.servedModels()
		return c
	}
	parts := make([]string, len(info.Providers))
	for i, p := range info.Providers {
		parts[i] = p.Provider + " (" + p.Status + ")"
	}
	c.Detail = strings.Join(parts, ", ")
	if len(info.LiveProviders()) == 0 {
		c.Status = CheckProblem
		c.Cause = "no provider serves it live; staging providers are not used for calls"
		c.Fix = "Pick another model, or wait until a provider is live for it"
		return c
	}
	c.Status = CheckOK
	return c
}

func providerCheck(info *ModelInfo, provider string, hub hubLinks) Check {
	c := Check{Name: "provider " + provider + " serves " + info.ID}
	var live []string
	for _, p := range info.LiveProviders() {
		live = append(live, p.Provider)
	}
	i := slices.IndexFunc(info.Providers, func(m ProviderMapping) bool { return m.Provider == provider })
	switch {
	case i < 0:
		c.Status = CheckProblem
		c.Cause = provider + " does not serve this model"
	case info.Providers[i].Status != "live":
		c.Status = CheckProblem
		c.Cause = provider + " serves it only in " + info.Providers[i].Status
	default:
		c.Status = CheckOK
		c.Detail = "live"
		return c
	}
	if len(live) > 0 {
		c.Fix = "Use provider \"auto\" to let Hugging Face pick an available one, or one of: " + strings.Join(live, ", ")
	} else {
		c.Fix = "Use provider \"auto\", or another model (see " + hub.model(info.ID) + ")"
	}
	return c
}

// probe makes a 1-token chat to one candidate, without fallback. It
// returns the probe's check, the call's error, and the first refusal of a
// chained token that another source's token got past, which the fallback
// would otherwise hide.
func (c *Client) probe(ctx context.Context, cand Candidate, billTo string) (check Check, refused *Attempt, err error) {
	check.Name = "probe: " + cand.String()
	start := time.Now()
	var opts []Option
	if billTo != "" {
		opts = append(opts, WithBillTo(billTo))
	}
	resp, err := c.Chat(ctx, ChatRequest{
		Model: cand.Model, Provider: cand.Provider,
		Messages:  []Message{UserMessage("Reply with OK.")},
		MaxTokens: 1,
		Fallbacks: []Candidate{},
	}, opts...)
	var attempts []Attempt
	var fe *FallbackError
	switch {
	case err == nil:
		attempts = resp.Attempts
	case errors.As(err, &fe):
		attempts = fe.Attempts
	}
	for i := 0; i+1 < len(attempts); i++ {
		if k := attempts[i].Kind(); k == ErrMissingScope || k == ErrUnauthorized {
			refused = &attempts[i]
			break
		}
	}
	if err == nil {
		check.Status = CheckOK
		check.Detail = fmt.Sprintf("answered by %s in %s", orUnknown(resp.Provider), max(time.Since(start).Round(time.Millisecond), time.Millisecond))
		return check, refused, nil
	}
	// The last attempt's failure is what stopped the call.
	last := err
	if len(attempts) > 0 && attempts[len(attempts)-1].Err != nil {
		last = attempts[len(attempts)-1].Err
	}
	check.Status = CheckProblem
	check.Cause = shortCause(last)
	var apiErr *APIError
	switch {
	case unreachable(last) && errors.As(last, &apiErr):
		check.Cause = "the router at " + c.base.String() + " cannot be reached: " + apiErr.Message
		check.Fix = "Check the network connection, or the router's URL (WithBaseURL; hfdoctor -router-url)"
	case errors.As(last, &apiErr):
		check.Fix = apiErr.hint()
	}
	if ctx.Err() != nil {
		check.Status = CheckUnknown
	}
	return check, refused, err
}

// refusalCheck reports a token the router refused while another source's
// token was tried after it.
func refusalCheck(a *Attempt) Check {
	var apiErr *APIError
	errors.As(a.Err, &apiErr)
	return Check{
		Name:   "router accepts the token from " + a.TokenSource,
		Status: CheckProblem,
		Cause:  shortCause(a.Err) + "; the next token source was used instead",
		Fix:    apiErr.hint(),
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "the router's choice"
	}
	return s
}

// shortCause is an error's text without the "what to do" part, which a
// check keeps in Fix: the kind, status and the server's words.
func shortCause(err error) string {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err.Error()
	}
	return apiErr.render(formCause)
}
