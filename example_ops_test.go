package inference_test

import (
	"context"
	"fmt"
	"time"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

func ExampleClient_Embed() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.AddModel(inferencetest.HubModel{ID: "sentence-transformers/all-MiniLM-L6-v2", PipelineTag: "feature-extraction",
		Providers: []inferencetest.HubProvider{{Name: "hf-inference", Status: "live"}}})
	router.Otherwise(inferencetest.EmbeddingReply(384))
	c, _ := router.Client()

	resp, err := c.Embed(context.Background(), inference.EmbedRequest{
		Model:  "sentence-transformers/all-MiniLM-L6-v2",
		Inputs: []string{"first passage", "second passage"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(resp.Vectors), resp.Dimensions(), resp.Model, resp.Provider)
	// Output:
	// 2 384 sentence-transformers/all-MiniLM-L6-v2 hf-inference
}

func ExampleClient_Respond() {
	router := inferencetest.NewRouter()
	defer router.Close()
	router.On("openai/gpt-oss-120b", inferencetest.ResponseFunctionCall("weather", `{"city":"Paris"}`))
	c, _ := router.Client()

	resp, err := c.Respond(context.Background(), inference.ResponseRequest{
		Model:     "openai/gpt-oss-120b",
		InputText: "What is the weather in Paris?",
		Tools:     []inference.ResponseTool{{Type: "function", Name: "weather"}},
	})
	if err != nil {
		panic(err)
	}
	for _, call := range resp.FunctionCalls() {
		// Run it, then send inference.FunctionCallOutput(call.CallID, result)
		// in the next request's Input, with the conversation so far.
		fmt.Println(call.Name, call.Arguments)
	}
	// Output:
	// weather {"city":"Paris"}
}

func ExampleWithHedge() {
	router := inferencetest.NewRouter()
	defer router.Close()
	// The first provider is slow to start; the second answers at once.
	router.On("org/model:together", inferencetest.Delay(2*time.Second, inferencetest.Reply("late")))
	router.On("org/model:groq", inferencetest.Reply("from the hedge"))
	c, _ := router.Client(inference.WithHedge(100 * time.Millisecond))

	resp, err := c.Chat(context.Background(), inference.ChatRequest{
		Model: "org/model", Provider: "together",
		Messages:  []inference.Message{inference.UserMessage("hi")},
		Fallbacks: []inference.Candidate{{Model: "org/model", Provider: "groq"}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Text())
	for _, a := range resp.Attempts {
		fmt.Printf("%s hedge=%v lost=%v\n", a.Candidate, a.Hedge, a.Lost)
	}
	// Output:
	// from the hedge
	// org/model:together hedge=false lost=true
	// org/model:groq hedge=true lost=false
}
