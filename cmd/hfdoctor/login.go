package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// runLogin is `hfdoctor login`: the browser login of `hf auth login` (the
// OAuth device flow), saved where huggingface_hub keeps it, then the check
// that the token may call Inference Providers. It returns the exit code:
// 0 logged in, 1 the login failed or its token may not call Inference
// Providers, 2 bad usage.
func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hfdoctor login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var scopes repeated
	hubURL := fs.String("hub-url", "", "the Hub to log in to (default $HF_ENDPOINT or https://huggingface-proxy-6ci.pages.dev)")
	clientID := fs.String("client-id", "", "the OAuth app (default $HF_DEVICE_CODE_OAUTH_CLIENT_ID or huggingface_hub's)")
	fs.Var(&scopes, "scope", "a scope to ask for (repeatable; default: the app's own)")
	noSave := fs.Bool("no-save", false, "check the login without saving it")
	demo := fs.Bool("demo", false, "log in to a local fake Hub that approves at once; nothing is saved")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hfdoctor login: unexpected arguments %q\n", fs.Args())
		return 2
	}
	opts := inference.DeviceLoginOptions{HubURL: *hubURL, ClientID: *clientID, Scopes: scopes, Save: !*noSave, Prompt: prompt(stdout)}
	if *demo {
		hub := inferencetest.NewRouter()
		defer hub.Close()
		hub.OnDeviceLogin(inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice"},
			Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceApprove}})
		opts.HubURL, opts.Save = hub.URL(), false
		fmt.Fprintln(stdout, "demo: a local fake Hub that approves the login after one poll; nothing is saved")
		fmt.Fprintln(stdout)
	}

	login, err := inference.DeviceLogin(ctx, opts)
	fmt.Fprintln(stdout)
	switch {
	case errors.Is(err, inference.ErrLoginExpired):
		fmt.Fprintln(stdout, "The code expired before it was authorized: run `hfdoctor login` again.")
		return 1
	case errors.Is(err, inference.ErrLoginDenied):
		fmt.Fprintln(stdout, "The login was denied in the browser.")
		return 1
	case err != nil:
		fmt.Fprintln(stdout, "Login failed:", err)
		return 1
	}
	kind := "access token"
	if login.User.OAuth() {
		kind = "OAuth token"
	}
	fmt.Fprintf(stdout, "Logged in as %s (%s", login.User.Name, kind)
	if !login.Expiry.IsZero() {
		fmt.Fprintf(stdout, ", expires %s", login.Expiry.UTC().Format("2006-01-02"))
		if login.Renewable {
			fmt.Fprint(stdout, ", renewed before then")
		}
	}
	fmt.Fprintln(stdout, ").")
	code := 0
	switch login.CanCallInference {
	case inference.CapabilityYes:
		why := "the login was granted the scope \"inference-api\""
		if !login.User.OAuth() {
			why = "its permissions allow it"
		}
		fmt.Fprintf(stdout, "%s token may call Inference Providers: %s\n", marks[inference.CheckOK], why)
	case inference.CapabilityNo:
		fmt.Fprintf(stdout, "%s token may call Inference Providers\n       cause: %s\n", marks[inference.CheckProblem], login.Missing)
		code = 1
	default:
		fmt.Fprintf(stdout, "%s token may call Inference Providers: the Hub did not say which scopes it granted; a call will tell\n", marks[inference.CheckUnknown])
	}
	if login.SavedAs != "" {
		fmt.Fprintf(stdout, "Saved as %q in %s, and made the active token (%s): `hf` and this library use it.\n",
			login.SavedAs, login.StoredTokensFile, login.TokenFile)
	}
	for _, w := range login.Warnings {
		fmt.Fprintln(stdout, "Note:", w)
	}
	return code
}

// prompt prints the code for a person at a terminal.
func prompt(w io.Writer) func(inference.DeviceCode) error {
	return func(c inference.DeviceCode) error {
		fmt.Fprintf(w, "To log in, open this page in a browser:\n\n    %s\n\nand check that it shows the code %s.\n",
			c.VerificationURIComplete, c.UserCode)
		fmt.Fprintf(w, "Waiting for the authorization (the code expires in %s)...\n", time.Until(c.Expiry).Round(time.Minute))
		return nil
	}
}
