// Command responses runs a tool call through the Responses API, offline
// against the library's fake router (inferencetest): the model asks for a
// function, the program runs it and sends the result back, and the model
// answers. The first model fails inside an HTTP 200 ("status": "failed",
// as the router reports an upstream failure), and the walk moves on to
// the fallback as it would for chat.
//
//	go run ./examples/responses
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "responses:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.On("org/overloaded", inferencetest.ResponseFailed("503 The model is overloaded, please retry later"))
	router.On("openai/gpt-oss-120b",
		inferencetest.ResponseFunctionCall("weather", `{"city":"Paris"}`),
		inferencetest.Reply("It is 21 °C and sunny in Paris."))
	client, err := router.Client(inference.WithRetry(inference.RetryPolicy{}))
	if err != nil {
		return err
	}

	weather := inference.ResponseTool{Type: "function", Name: "weather", Description: "The weather of a city",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]string{"type": "string"}}, "required": []string{"city"}}}
	req := inference.ResponseRequest{
		Model:     "org/overloaded",
		Fallbacks: []inference.Candidate{{Model: "openai/gpt-oss-120b"}},
		Input:     []inference.InputItem{inference.UserInput("What is the weather in Paris?")},
		Tools:     []inference.ResponseTool{weather},
	}
	resp, err := client.Respond(ctx, req)
	if err != nil {
		return err
	}
	for _, a := range resp.Attempts {
		outcome := "served"
		if a.Err != nil {
			outcome = inference.KindName(a.Err)
		}
		fmt.Fprintf(out, "attempt %s: %s\n", a.Candidate, outcome)
	}
	calls := resp.FunctionCalls()
	if len(calls) != 1 {
		return fmt.Errorf("expected one function call, got %d", len(calls))
	}
	call := calls[0]
	var args struct{ City string }
	if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
		return err
	}
	fmt.Fprintf(out, "the model calls %s(%s)\n", call.Name, call.Arguments)
	result := fmt.Sprintf(`{"city":%q,"temp_c":21,"sky":"sunny"}`, args.City)

	// The router keeps no state: the next request carries the whole
	// conversation, the call and its output included.
	req.Model, req.Fallbacks = "openai/gpt-oss-120b", nil
	callItem, _ := call.Input()
	req.Input = append(req.Input,
		callItem,
		inference.FunctionCallOutput(call.CallID, result))
	resp, err = client.Respond(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "answer: %s\n", resp.OutputText())
	return nil
}
