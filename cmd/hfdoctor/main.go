// Command hfdoctor diagnoses why calls to Hugging Face Inference Providers
// fail, and says how to fix it: it finds the token as the library does
// (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the token file of `hf auth login`),
// asks the Hub whose token it is and what it may do, checks each model
// (exists, gated, which providers serve it) and, unless -no-probe, makes a
// 1-token chat per model and provider, whose failure it classifies.
//
// `hfdoctor login` logs the user in as `hf auth login` does, in a browser
// (the OAuth device flow), saves the login where huggingface_hub keeps it,
// and checks that its token may call Inference Providers.
//
// Usage:
//
//	hfdoctor -model meta-llama/Llama-3.3-70B-Instruct [-model ...] [-provider together ...]
//	hfdoctor -demo            # a scripted broken setup, offline, no token needed
//	hfdoctor login [-hub-url U] [-client-id ID] [-scope S ...] [-no-save]
//	hfdoctor login -demo      # against a local fake Hub, nothing saved
//
// Flags:
//
//	-model M       a model to check (repeatable)
//	-provider P    a provider to check for each model (repeatable)
//	-hub-url U     the Hub (default $HF_ENDPOINT or https://huggingface-proxy-6ci.pages.dev)
//	-router-url U  the router (default https://router.huggingface.co)
//	-no-probe      skip the 1-token chats
//	-json          print the report as JSON
//	-demo          run against a local fake Hub and router with a broken setup
//
// It exits 0 when every check passes, 1 when one finds a problem (no token
// counts; for login, a failed login or a token that may not call Inference
// Providers), and 2 for bad usage. It never prints the token, only a short
// prefix.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string { return strings.Join(*r, ",") }

func (r *repeated) Set(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return errors.New("empty value")
	}
	*r = append(*r, v)
	return nil
}

// run is the command, returning its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "login" {
		return runLogin(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("hfdoctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: hfdoctor [flags]        diagnose why calls to Inference Providers fail")
		fmt.Fprintln(stderr, "       hfdoctor login [flags]  log in as `hf auth login` does (hfdoctor login -h for its flags)")
		fs.PrintDefaults()
	}
	var models, providers repeated
	fs.Var(&models, "model", "a model to check (repeatable)")
	fs.Var(&providers, "provider", "a provider to check for each model (repeatable)")
	hubURL := fs.String("hub-url", "", "the Hub's URL (default $HF_ENDPOINT or https://huggingface-proxy-6ci.pages.dev)")
	routerURL := fs.String("router-url", "", "the router's URL (default https://router.huggingface.co)")
	noProbe := fs.Bool("no-probe", false, "skip the 1-token chat per model and provider")
	billTo := fs.String("bill-to", "", "an organization to bill the probes to (X-HF-Bill-To); checks that the token's user belongs to it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	demo := fs.Bool("demo", false, "diagnose a scripted broken setup on a local fake Hub and router")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hfdoctor: unexpected arguments %q; models go in -model\n", fs.Args())
		return 2
	}

	opts := []inference.Option{inference.WithRetry(inference.RetryPolicy{MaxRetries: 1})}
	if *demo {
		router, demoOpts, demoModels, demoProviders := demoSetup()
		defer router.Close()
		opts = append(opts, demoOpts...)
		models, providers = demoModels, demoProviders
		note := stdout
		if *asJSON {
			note = stderr
		}
		fmt.Fprintln(note, "demo: a local fake Hub and router; the user logged in with OAuth without the inference-api scope (HF_TOKEN is chained after it), one model is gated, one provider fails")
		fmt.Fprintln(note)
	} else {
		if *routerURL != "" {
			opts = append(opts, inference.WithBaseURL(*routerURL))
		}
		if *hubURL != "" {
			opts = append(opts, inference.WithHubURL(*hubURL))
		}
	}
	client, err := inference.NewClient(opts...)
	if err != nil {
		fmt.Fprintln(stderr, "hfdoctor:", err)
		return 2
	}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	report := client.Diagnose(ctx, inference.DiagnoseOptions{Models: models, Providers: providers, NoProbe: *noProbe, BillTo: *billTo})

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			fmt.Fprintln(stderr, "hfdoctor:", err)
			return 2
		}
	} else {
		printReport(stdout, report)
	}
	if !report.OK() {
		return 1
	}
	return 0
}

var marks = map[inference.CheckStatus]string{
	inference.CheckOK:      "[ ok ]",
	inference.CheckProblem: "[FAIL]",
	inference.CheckUnknown: "[ ?? ]",
}

func printReport(w io.Writer, d *inference.Diagnosis) {
	fmt.Fprintln(w, "Hugging Face Inference Providers: diagnosis")
	if d.TokenSource != "" {
		kind := "access token"
		if d.OAuth {
			kind = "OAuth token"
		}
		fmt.Fprintf(w, "token: %s from %s (%s)", kind, d.TokenSource, d.TokenPrefix)
		if d.User != "" {
			fmt.Fprintf(w, ", user %s", d.User)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, c := range d.Checks {
		line := marks[c.Status] + " " + c.Name
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(w, line)
		if c.Cause != "" {
			fmt.Fprintln(w, "       cause: "+c.Cause)
		}
		if c.Fix != "" && c.Status != inference.CheckOK {
			fmt.Fprintln(w, "       fix:   "+c.Fix)
		}
	}
	fmt.Fprintln(w)
	if n := len(d.Problems()); n > 0 {
		fmt.Fprintf(w, "%d problem(s) found.\n", n)
	} else {
		fmt.Fprintln(w, "No problem found.")
	}
}

// demoSetup scripts the troubleshooting page's broken setup: a user logged
// in with OAuth but without the inference-api scope (HF_TOKEN is the
// fallback), a gated model, and a provider that fails.
func demoSetup() (*inferencetest.Router, []inference.Option, []string, []string) {
	const (
		oauthToken = "hf_oauth_DemoUserLoggedInWithoutScopeXXXX"
		gated      = "ardent-figment/gated-model"
		served     = "meta-llama/Llama-3.3-70B-Instruct"
	)
	r := inferencetest.NewRouter()
	r.AddUser(oauthToken, inferencetest.HubUser{Name: "alice", OAuth: true})
	r.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", TokenName: "space-token", Permissions: []string{inference.PermissionInferenceProviders}})
	r.AddModel(inferencetest.HubModel{ID: gated, Gated: "manual", PipelineTag: "text-generation",
		Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}, {Name: "hyperbolic", Status: "live"}}})
	r.AddModel(inferencetest.HubModel{ID: served, PipelineTag: "text-generation",
		Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}, {Name: "hyperbolic", Status: "live"}, {Name: "nebius", Status: "staging"}}})
	r.ForToken(oauthToken, inferencetest.MissingScope())
	r.On(gated+":together", inferencetest.Gated())
	r.On(gated+":hyperbolic", inferencetest.Gated())
	r.On(served+":together", inferencetest.Reply("OK"))
	r.On(served+":hyperbolic", inferencetest.ProviderError(502))

	user := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: oauthToken})
	tokens := inference.ChainTokens(inference.OAuthToken(user), inference.StaticToken(inferencetest.Token))
	opts := []inference.Option{
		inference.WithBaseURL(r.URL()), inference.WithHubURL(r.URL()), inference.WithTokenSource(tokens),
		inference.WithRetry(inference.RetryPolicy{MaxRetries: 1, MinWait: time.Millisecond, MaxWait: time.Millisecond}),
	}
	return r, opts, []string{gated, served}, []string{"together", "hyperbolic"}
}
