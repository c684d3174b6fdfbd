package inference_test

import (
	"context"
	"errors"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hfkit/inference"
	"github.com/hfkit/inference/inferencetest"
)

// What a new user reads: error texts, godoc promises, -h output.

// Item 12 of issue 32: a deadline in a later embeddings batch read "chat
// with org/emb:together". The text names the operation the call made.
func TestDeadlineNamesTheOperation(t *testing.T) {
	verifyNoLeaks(t)
	r := embedRouter(t)
	r.On(embedModel+":together", inferencetest.EmbeddingReply(4), inferencetest.Hang())
	r.On("org/m", inferencetest.Hang())
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(t.Context(), 150*time.Millisecond)
	}

	ctx, cancel := deadline()
	defer cancel()
	req := embedReq(embedModel, "first batch", "second batch")
	req.Provider, req.BatchSize = "together", 1
	_, err = c.Embed(ctx, req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "embeddings from "+embedModel+":together")
	assert.NotContains(t, err.Error(), "chat")

	ctx, cancel = deadline()
	defer cancel()
	_, err = c.Respond(ctx, respReq("org/m"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "response from org/m")

	ctx, cancel = deadline()
	defer cancel()
	_, err = c.RespondStream(ctx, respReq("org/m"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "response from org/m")

	ctx, cancel = deadline()
	defer cancel()
	_, err = c.Chat(ctx, chatReq("org/m", ""))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "chat with org/m")

	mapModel(r, imageModel, "text-to-image", "fal-ai")
	mapModel(r, asrModel, "automatic-speech-recognition", "fal-ai")
	mapModel(r, speechModel, "text-to-speech", "fal-ai")
	r.Otherwise(inferencetest.Hang())
	for what, call := range map[string]func(context.Context) error{
		"image from " + imageModel + ":fal-ai": func(ctx context.Context) error {
			_, err := c.TextToImage(ctx, imageReq(""))
			return err
		},
		"transcript from " + asrModel + ":fal-ai": func(ctx context.Context) error {
			_, err := c.Transcribe(ctx, inference.TranscribeRequest{Model: asrModel, Audio: testWAV})
			return err
		},
		"speech from " + speechModel + ":fal-ai": func(ctx context.Context) error {
			_, err := c.Speak(ctx, inference.SpeechRequest{Model: speechModel, Text: "hi"})
			return err
		},
	} {
		ctx, cancel = deadline()
		err = call(ctx)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, what)
		assert.Contains(t, err.Error(), what)
	}
}

// Item 12 of issue 32: the APIError godoc said only a call that tried
// several candidates returns a *FallbackError. Every failed walk does,
// with one candidate too; a stream that fails after content gives the
// *APIError itself.
func TestOneCandidateFailureIsAFallbackError(t *testing.T) {
	r := embedRouter(t)
	r.On("org/gated", inferencetest.Gated())
	r.On(embedModel+":together", inferencetest.Gated())
	r.On("org/cut", inferencetest.StreamCut("half"))
	c, err := r.Client(inference.WithRetry(inference.RetryPolicy{}))
	require.NoError(t, err)
	embed := embedReq(embedModel, "x")
	embed.Provider = "together"
	calls := map[string]func() error{
		"Chat": func() error { _, err := c.Chat(t.Context(), chatReq("org/gated", "")); return err },
		"ChatStream": func() error {
			_, err := c.ChatStream(t.Context(), chatReq("org/gated", ""))
			return err
		},
		"Embed":   func() error { _, err := c.Embed(t.Context(), embed); return err },
		"Respond": func() error { _, err := c.Respond(t.Context(), respReq("org/gated")); return err },
		"RespondStream": func() error {
			_, err := c.RespondStream(t.Context(), respReq("org/gated"))
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			var fe *inference.FallbackError
			require.ErrorAs(t, err, &fe)
			assert.Len(t, fe.Attempts, 1, "one candidate, one attempt")
			var apiErr *inference.APIError
			require.ErrorAs(t, err, &apiErr, "errors.As reaches the attempt's *APIError")
			assert.ErrorIs(t, err, inference.ErrGatedModel)
		})
	}

	s, err := c.ChatStream(t.Context(), chatReq("org/cut", ""))
	require.NoError(t, err)
	defer s.Close()
	for s.Next() {
	}
	var fe *inference.FallbackError
	assert.False(t, errors.As(s.Err(), &fe), "a failure after content is the stream's own")
	var apiErr *inference.APIError
	require.ErrorAs(t, s.Err(), &apiErr)
	assert.ErrorIs(t, s.Err(), inference.ErrStream)
}

// Item 12 of issue 32: `go run ./examples/quickstart -h` showed "-live hf
// auth login": the flag package reads a backquoted word of a usage as the
// flag's value name. Every flag of the examples and commands reads, in
// -h, as it was written: a bool flag has no value name, and no usage
// names a value by accident.
func TestFlagUsagesReadAsWritten(t *testing.T) {
	files, err := filepath.Glob("examples/*/main.go")
	require.NoError(t, err)
	more, err := filepath.Glob("cmd/*/main.go")
	require.NoError(t, err)
	files = append(files, more...)
	require.NotEmpty(t, files)
	kinds := map[string]func(fs *flag.FlagSet, usage string){
		"Bool":     func(fs *flag.FlagSet, usage string) { fs.Bool("f", false, usage) },
		"String":   func(fs *flag.FlagSet, usage string) { fs.String("f", "", usage) },
		"Int":      func(fs *flag.FlagSet, usage string) { fs.Int("f", 0, usage) },
		"Duration": func(fs *flag.FlagSet, usage string) { fs.Duration("f", 0, usage) },
		"Float64":  func(fs *flag.FlagSet, usage string) { fs.Float64("f", 0, usage) },
	}
	defaultNames := map[string]string{"Bool": "", "String": "string", "Int": "int", "Duration": "duration", "Float64": "float"}
	flags := 0
	for _, file := range files {
		parsed, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		require.NoError(t, err)
		ast.Inspect(parsed, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 3 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || kinds[sel.Sel.Name] == nil {
				return true
			}
			lit, ok := call.Args[2].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			usage, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			kinds[sel.Sel.Name](fs, usage)
			name, shown := flag.UnquoteUsage(fs.Lookup("f"))
			assert.Equal(t, defaultNames[sel.Sel.Name], name, "%s: the usage %q makes -h show a value name", file, usage)
			assert.Equal(t, usage, shown, "%s: -h shows the usage as written", file)
			flags++
			return true
		})
	}
	assert.Greater(t, flags, 10, "the flags were found")
}

// Item 12 of issue 32: the README listed only Chat, ChatStream and
// ChatJSON as taking per-call options; every operation does.
func TestEveryOperationTakesPerCallOptions(t *testing.T) {
	r := embedRouter(t)
	r.On("org/m", inferencetest.Reply(`{"city":"Paris","temp":21}`))
	r.On(embedModel+":hf-inference", inferencetest.EmbeddingReply(4))
	mapModel(r, imageModel, "text-to-image", "fal-ai")
	mapModel(r, asrModel, "automatic-speech-recognition", "replicate")
	mapModel(r, speechModel, "text-to-speech", "together")
	r.On(imageModel+":fal-ai", inferencetest.Job{Queued: 1}.Image(testPNG(t, 4)))
	r.On(asrModel+":replicate", inferencetest.Job{Queued: 1}.Transcription("hi"))
	r.On(speechModel+":together", inferencetest.Speech(testWAV, "audio/wav"))
	c, err := r.Client()
	require.NoError(t, err)
	opts := []inference.Option{inference.WithHeader("X-Trace", "per-call"), inference.WithBillTo("acme-corp")}
	embed := embedReq(embedModel, "x")
	embed.Provider = "hf-inference"
	drain := func(s interface {
		Next() bool
		Err() error
		Close() error
	}, err error) error {
		if err != nil {
			return err
		}
		defer s.Close()
		for s.Next() {
		}
		return s.Err()
	}
	for name, call := range map[string]func() error{
		"Chat":       func() error { _, err := c.Chat(t.Context(), chatReq("org/m", ""), opts...); return err },
		"ChatStream": func() error { return drain(c.ChatStream(t.Context(), chatReq("org/m", ""), opts...)) },
		"ChatJSON": func() error {
			_, _, err := inference.ChatJSON[weather](t.Context(), c, chatReq("org/m", ""), opts...)
			return err
		},
		"Embed":         func() error { _, err := c.Embed(t.Context(), embed, opts...); return err },
		"Respond":       func() error { _, err := c.Respond(t.Context(), respReq("org/m"), opts...); return err },
		"RespondStream": func() error { return drain(c.RespondStream(t.Context(), respReq("org/m"), opts...)) },
		"ResponseJSON": func() error {
			_, _, err := inference.ResponseJSON[weather](t.Context(), c, respReq("org/m"), opts...)
			return err
		},
		"TextToImage": func() error { _, err := c.TextToImage(t.Context(), imageReq("fal-ai"), opts...); return err },
		"Transcribe": func() error {
			_, err := c.Transcribe(t.Context(), inference.TranscribeRequest{Model: asrModel, Provider: "replicate", Audio: testWAV}, opts...)
			return err
		},
		"Speak": func() error {
			_, err := c.Speak(t.Context(), inference.SpeechRequest{Model: speechModel, Provider: "together", Text: "hi"}, opts...)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			r.Reset()
			require.NoError(t, call())
			reqs := r.Requests()
			require.NotEmpty(t, reqs)
			for _, q := range reqs {
				assert.Equal(t, "per-call", q.Header.Get("X-Trace"))
				assert.Equal(t, "acme-corp", q.Header.Get("X-Hf-Bill-To"))
			}
		})
	}
}

// Item 12 of issue 32: the package godoc's list of examples missed
// embeddings and responses, the README's table fleet and otel. Every
// example is in both.
func TestEveryExampleIsListed(t *testing.T) {
	dirs, err := filepath.Glob("examples/*/main.go")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	doc, err := os.ReadFile("doc.go")
	require.NoError(t, err)
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, table, _ := strings.Cut(string(readme), "| example | shows |")
	table, _, _ = strings.Cut(table, "\n\n")
	for _, main := range dirs {
		name := filepath.Base(filepath.Dir(main))
		assert.Regexp(t, `(?s)The examples folder.*\b`+name+`\b`, string(doc), "doc.go lists %s", name)
		assert.Contains(t, table, "examples/"+name, "the README's table lists %s", name)
	}
}
