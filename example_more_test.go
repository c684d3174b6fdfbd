package inference_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func ExampleChatJSON() {
	router := inferencetest.NewRouter()
	defer router.Close()
	// The model wraps its JSON in prose and a fence; ChatJSON still reads it.
	router.On("org/judge", inferencetest.Reply("Here you go:\n```json\n{\"verdict\":\"pass\",\"score\":0.9}\n```"))
	c, _ := router.Client()

	type Assessment struct {
		Verdict string  `json:"verdict" description:"pass or fail"`
		Score   float64 `json:"score"`
	}
	a, _, err := inference.ChatJSON[Assessment](context.Background(), c, inference.ChatRequest{
		Model:    "org/judge",
		Messages: []inference.Message{inference.UserMessage("Assess this answer: ...")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", a)
	// Output:
	// {Verdict:pass Score:0.9}
}

func ExampleClient_Diagnose() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.AddUser(inferencetest.Token, inferencetest.HubUser{Name: "alice", Role: "fineGrained", Permissions: []string{"repo.content.read"}})
	router.AddModel(inferencetest.HubModel{ID: "org/model", Providers: []inferencetest.HubProvider{{Name: "together", Status: "live"}}})
	router.ForToken(inferencetest.Token, inferencetest.MissingScope())
	c, _ := router.Client()

	d := c.Diagnose(context.Background(), inference.DiagnoseOptions{Models: []string{"org/model"}, NoProbe: true})
	for _, check := range d.Problems() {
		fmt.Println(check.Name+":", check.Cause)
	}
	// Output:
	// token may call Inference Providers: this fine-grained token lacks the permission "Make calls to Inference Providers" (inference.serverless.write)
}

func ExampleWithProviderWalk() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.List(inference.RouterModel{ID: "org/model", Providers: []inference.ModelProvider{
		{Provider: "groq", Status: "live"}, {Provider: "together", Status: "live"}, {Provider: "nebius", Status: "error"},
	}})
	router.On("org/model:groq", inferencetest.RateLimited(0))
	router.On("org/model:together", inferencetest.ReplyFrom("together", "Hello."))
	c, _ := router.Client(inference.WithProviderWalk(), inference.WithRetry(inference.RetryPolicy{}))

	resp, err := c.Chat(context.Background(), inference.ChatRequest{
		Model:    "org/model", // no provider: the client walks the live ones
		Messages: []inference.Message{inference.UserMessage("hi")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text(), "from", resp.Provider)
	for _, a := range resp.Attempts {
		fmt.Println(a.Candidate, a.StatusCode)
	}
	// Output:
	// Hello. from together
	// org/model:groq 429
	// org/model:together 200
}

// ExampleDeviceLogin logs a user in from a terminal, here against a local
// fake Hub; with no HubURL it is huggingface.co, as `hf auth login`.
func ExampleDeviceLogin() {
	hub := inferencetest.NewRouter()
	defer hub.Close()
	hub.OnDeviceLogin(inferencetest.DeviceLogin{User: inferencetest.HubUser{Name: "alice"}})

	login, err := inference.DeviceLogin(context.Background(), inference.DeviceLoginOptions{
		HubURL: hub.URL(),
		Prompt: func(code inference.DeviceCode) error {
			fmt.Printf("Open %s and enter %s\n", strings.TrimPrefix(code.VerificationURI, hub.URL()), code.UserCode)
			return nil
		},
		// Save: true would store the login where `hf auth login` does.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if login.CanCallInference == inference.CapabilityNo {
		fmt.Println(login.Missing)
		return
	}
	client, err := inference.NewClient(inference.WithTokenSource(login.Tokens), inference.WithBaseURL(hub.URL()), inference.WithHubURL(hub.URL()))
	if err != nil {
		fmt.Println(err)
		return
	}
	who, err := client.Whoami(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("logged in as", who.Name, "with an OAuth token:", who.OAuth())
	// Output:
	// Open /oauth/device and enter ABCD-EFGH
	// logged in as alice with an OAuth token: true
}

// ExampleEnvTokenWith renews a login stored by `hf auth login` on a Hub
// given explicitly, outside a Client (a Client uses its own Hub).
func ExampleEnvTokenWith() {
	tokens := inference.EnvTokenWith(inference.EnvTokenOptions{HubURL: "https://huggingface-proxy-6ci.pages.dev", Logger: slog.Default()})
	tok, err := tokens.Token(context.Background())
	if err != nil {
		fmt.Println(err) // ErrNoToken, or ErrUnauthorized once a login expired and could not be renewed
		return
	}
	fmt.Println(tok.Source, tok.Expiry)
}
