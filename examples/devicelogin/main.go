// Command devicelogin logs a user in from a terminal the way `hf auth
// login` does, in a browser (the OAuth device flow), saves the login where
// huggingface_hub keeps it, and calls a model with it: the client's
// default token source (EnvToken) reads the saved login and renews it
// before it expires, writing the renewal back for `hf` too.
//
// Offline by default: a local fake Hub approves the login after one poll
// (no browser needed) and the login is saved in a temporary HF_HOME. Its
// first token lives 12 hours, less than the day of margin, so the first
// call renews the login first (for 30 days). With -live it logs in to huggingface.co, saves
// the login in your huggingface_hub files (as `hf auth login` would) and
// calls the real router.
//
//	go run ./examples/devicelogin
//	go run ./examples/devicelogin -live -model meta-llama/Llama-3.3-70B-Instruct
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	live := flag.Bool("live", false, "log in to huggingface.co and call the real router")
	model := flag.String("model", "meta-llama/Llama-3.3-70B-Instruct", "model id on the Hub")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout, *live, *model); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run does the example's work, so that a test can run it too.
func run(ctx context.Context, out io.Writer, live bool, model string) error {
	login := inference.DeviceLoginOptions{Save: true, Prompt: func(c inference.DeviceCode) error {
		fmt.Fprintf(out, "Open %s in a browser and check that it shows the code %s.\n", c.VerificationURIComplete, c.UserCode)
		return nil
	}}
	var clientOpts []inference.Option
	var afterLogin func()
	if !live {
		hub := inferencetest.NewRouter()
		defer hub.Close()
		hub.OnDeviceLogin(inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice"},
			Polls: []inferencetest.DevicePoll{inferencetest.DevicePending, inferencetest.DeviceApprove}})
		hub.SetOAuth(inferencetest.HubOAuth{TokenLifetime: 12 * time.Hour})
		hub.On(model, inferencetest.Reply("Logged in through the browser, and renewed before it expired."))
		home, err := os.MkdirTemp("", "devicelogin-hf-home-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(home)
		// This process only: huggingface_hub's files in a temporary
		// place, and no HF_TOKEN before the login.
		for k, v := range map[string]string{"HF_HOME": home, "HF_TOKEN_PATH": "", "HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": ""} {
			if err := os.Setenv(k, v); err != nil {
				return err
			}
		}
		fmt.Fprintln(out, "offline: a local fake Hub that approves the login after one poll, huggingface_hub's files in a temporary HF_HOME (pass -live for huggingface.co)")
		login.HubURL = hub.URL()
		afterLogin = func() { hub.SetOAuth(inferencetest.HubOAuth{}) } // renewed tokens live 30 days
		clientOpts = []inference.Option{inference.WithBaseURL(hub.URL()), inference.WithHubURL(hub.URL())}
	}

	l, err := inference.DeviceLogin(ctx, login)
	switch {
	case errors.Is(err, inference.ErrLoginExpired), errors.Is(err, inference.ErrLoginDenied):
		return fmt.Errorf("not logged in: %w", err)
	case err != nil:
		return err
	}
	if afterLogin != nil {
		afterLogin()
	}
	fmt.Fprintf(out, "logged in as %s; the token expires in %.0f hours and may call Inference Providers: %s\n",
		l.User.Name, time.Until(l.Expiry).Hours(), l.CanCallInference)
	if l.CanCallInference == inference.CapabilityNo {
		return errors.New(l.Missing)
	}
	for _, w := range l.Warnings {
		fmt.Fprintln(out, "note:", w)
	}
	before, err := storedFields(l.StoredTokensFile, l.SavedAs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "saved as %q in %s (%s), the active token in %s\n", l.SavedAs, filepath.Base(l.StoredTokensFile),
		strings.Join(keys(before), ", "), filepath.Base(l.TokenFile))

	// A client with no token option uses EnvToken, which reads the saved
	// login, and renews it when less than a day remains.
	client, err := inference.NewClient(clientOpts...)
	if err != nil {
		return err
	}
	resp, err := client.Chat(ctx, inference.ChatRequest{Model: model, MaxTokens: 50,
		Messages: []inference.Message{inference.UserMessage("Say hello in five words.")}})
	if err != nil {
		return err
	}
	source := resp.Attempts[0].TokenSource
	if strings.HasPrefix(source, "token file ") {
		source = "the token file"
	}
	fmt.Fprintf(out, "%s answered, with the token from %s: %s\n", resp.Provider, source, resp.Text())
	after, err := storedFields(l.StoredTokensFile, l.SavedAs)
	if err != nil {
		return err
	}
	if after["hf_token"] != before["hf_token"] {
		fmt.Fprintf(out, "the login was renewed before the call and written back: it now expires in %s days (was %s hours); refresh token rotated: %v\n",
			until(after["expires_at"], 24*time.Hour), until(before["expires_at"], time.Hour), after["refresh_token"] != before["refresh_token"])
	}
	return nil
}

// storedFields reads the login's section of stored_tokens as
// huggingface_hub writes it ("key = value" lines under "[name]"); only
// field names and the expiry are printed, never a token.
func storedFields(path, name string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); ok && section == name {
			fields[k] = v
		}
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s has no section %q", path, name)
	}
	return fields, nil
}

func keys(fields map[string]string) []string {
	var out []string
	for _, k := range []string{"hf_token", "refresh_token", "expires_at"} {
		if _, ok := fields[k]; ok {
			out = append(out, k)
		}
	}
	return out
}

// until is the time left until the unix time s, in units.
func until(s string, unit time.Duration) string {
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return "?"
	}
	return fmt.Sprintf("%.0f", time.Until(time.Unix(n, 0)).Seconds()/unit.Seconds())
}
