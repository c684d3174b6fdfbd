package inference

import (
	"errors"
	"fmt"
	"strings"
)

// Candidate is one model, optionally pinned to a provider, that a call may
// be served by. Provider "" or "auto" lets the router choose; a provider
// name such as "together" pins it; "fastest", "cheapest" and "preferred" ask
// the router for that policy.
type Candidate struct {
	Model    string
	Provider string
}

// String is the model as the router receives it: "model" or
// "model:provider".
func (c Candidate) String() string { return c.wireModel() }

func (c Candidate) wireModel() string {
	if c = c.normalized(); c.Provider == "" {
		return c.Model
	}
	return c.Model + ":" + c.Provider
}

// normalized is the one spelling of a candidate: "auto" is "", and a
// provider named in the model ("org/m:together") moves to Provider, so that
// two spellings of the same candidate compare equal.
func (c Candidate) normalized() Candidate {
	if c.Provider == ProviderAuto {
		c.Provider = ""
	}
	if c.Provider == "" {
		if model, provider, ok := strings.Cut(c.Model, ":"); ok && provider != "" {
			c.Model, c.Provider = model, provider
		}
	}
	return c
}

// Provider values with a meaning of their own.
const (
	// ProviderAuto lets the router choose (the same as "").
	ProviderAuto = "auto"
	// ProviderFastest asks for the provider with the highest throughput.
	ProviderFastest = "fastest"
	// ProviderCheapest asks for the lowest price per output token.
	ProviderCheapest = "cheapest"
	// ProviderPreferred asks for the first available provider in the
	// user's order at https://huggingface-proxy-6ci.pages.dev/settings/inference-providers.
	ProviderPreferred = "preferred"
)

// validate reports what is wrong with a candidate, or nil.
func (c Candidate) validate() error {
	if c.Model == "" {
		return errors.New("the model is empty")
	}
	if err := checkName("model", c.Model, true); err != nil {
		return err
	}
	if c.Provider == "" {
		return nil
	}
	if strings.Contains(c.Model, ":") {
		return fmt.Errorf("model %q already names a provider after ':' and Provider is %q too: use one", c.Model, c.Provider)
	}
	if c.Provider == ProviderEvery {
		return nil
	}
	return checkName("provider", c.Provider, false)
}

// checkName refuses names that would corrupt a request: control characters,
// white space, and (for providers) anything outside [a-z0-9._-].
func checkName(what, s string, model bool) error {
	if len(s) > 256 {
		return fmt.Errorf("the %s is longer than 256 bytes", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("the %s %q contains white space or a control character", what, s)
		}
		if !model && !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("the provider %q may hold only lower-case letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

// ProviderEvery is a provider value that expands a candidate into one
// candidate per live provider of its model, from the router's model list,
// ordered by [WithProviderOrder]. Providers that cannot take the request
// (no tool support when it has tools, no structured output when it asks
// for it, a context shorter than the request's estimate) are left out.
// When the list cannot be had, the candidate falls back to the router's
// choice (the model alone), never to an error.
const ProviderEvery = "*"
