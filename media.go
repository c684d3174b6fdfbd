package inference

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"
)

// ImageRequest is one text-to-image call.
type ImageRequest struct {
	// Model is the Hub id of a text-to-image model, such as
	// "black-forest-labs/FLUX.1-schnell".
	Model string
	// Provider is "" or "auto" to walk every live provider the Hub maps
	// for the model's text-to-image, in the Hub's order, or a provider's
	// name ("fal-ai", "replicate", "together", "hf-inference", "nscale",
	// "wavespeed", "zai-org") to use that one.
	Provider string
	// Prompt describes the image; NegativePrompt what it should not show.
	Prompt         string
	NegativePrompt string
	// Width, Height, Steps (inference steps), GuidanceScale and Seed are
	// sent under Hugging Face's parameter names (width, height,
	// num_inference_steps, guidance_scale, seed), renamed where a
	// provider's API names them otherwise (fal's image_size, Together's
	// steps); zero and nil leave them to the model.
	Width, Height int
	Steps         int
	GuidanceScale *float64
	Seed          *int64
	// Parameters are passed to the provider as they are, beside the
	// prompt, over the fields above: a provider's own knobs (fal's
	// "num_images", Replicate's "aspect_ratio").
	Parameters map[string]any
	// Fallbacks are other models (and providers) tried, for this call
	// only, when every provider of Model failed. The client's
	// WithFallback list (chat's) never applies.
	Fallbacks []Candidate
}

// ImageResponse is a generated image.
type ImageResponse struct {
	// Image is the image's bytes; nil with [WithResultURL] when the
	// provider left the image at a URL.
	Image []byte
	// ContentType is the image's type: the file's header, else sniffed
	// from its bytes ("image/png", "image/jpeg", "image/webp").
	ContentType string
	// URL is where the provider left the image (a CDN's), if it did.
	URL string
	// Seed is the seed the provider reports having used, when it does
	// (fal-ai): it can be beyond an int64, so send it back through
	// Parameters["seed"] when it does not fit ImageRequest.Seed.
	Seed *uint64
	// Model is the Hub id of the model that made the image: the request's
	// Model, or the fallback that served.
	Model string
	// Provider served the image.
	Provider string
	// RequestID is the provider's id of the job (a queued job's), else the
	// answer's request id.
	RequestID string
	// Attempts lists every attempt in order; the last one served.
	Attempts []Attempt
	// Skipped are candidates not tried because they were cooling down.
	Skipped []Candidate
}

// TranscribeRequest is one speech-to-text call.
type TranscribeRequest struct {
	// Model is the Hub id of a speech recognition model, such as
	// "openai/whisper-large-v3".
	Model string
	// Provider is "" or "auto" (every live provider of the model's
	// automatic-speech-recognition, in the Hub's order) or a provider's
	// name ("fal-ai", "hf-inference", "together", "deepinfra",
	// "replicate").
	Provider string
	// Audio is the recording. It is sent as it is to hf-inference, and
	// encoded once per attempt for the others (a form, or base64 in a
	// data URL); no retry copies it.
	Audio []byte
	// ContentType is the audio's type ("audio/wav", "audio/mpeg",
	// "audio/flac", "video/webm"); "" sniffs it from the bytes.
	ContentType string
	// Language is the spoken language's code ("en"), for the providers
	// that take one (all but hf-inference); "" lets the model detect it.
	Language string
	// Fallbacks are other models (and providers) tried, for this call
	// only, when every provider of Model failed.
	Fallbacks []Candidate
}

// Transcript is the text of a recording.
type Transcript struct {
	// Text is the whole transcript.
	Text string
	// Chunks are its timed pieces, when the provider gives them.
	Chunks []TranscriptChunk
	// Model is the Hub id of the model that served; Provider, the
	// provider.
	Model, Provider string
	// RequestID is the provider's id of the job, else the answer's
	// request id.
	RequestID string
	// Attempts lists every attempt in order; the last one served.
	Attempts []Attempt
	// Skipped are candidates not tried because they were cooling down.
	Skipped []Candidate
}

// TranscriptChunk is a timed piece of a transcript.
type TranscriptChunk struct {
	Text       string
	Start, End time.Duration
}

// SpeechRequest is one text-to-speech call.
type SpeechRequest struct {
	// Model is the Hub id of a text-to-speech model, such as
	// "hexgrad/Kokoro-82M".
	Model string
	// Provider is "" or "auto" (every live provider of the model's
	// text-to-speech, in the Hub's order) or a provider's name
	// ("hf-inference", "fal-ai", "replicate", "together", "deepinfra").
	Provider string
	// Text is what to say.
	Text string
	// Voice is the model's voice ("af_alloy" for Kokoro), sent to the
	// providers that take one (all but hf-inference); "" leaves it to the
	// provider (Together's Kokoro then takes "af_alloy").
	Voice string
	// Parameters are passed to the provider as they are, beside the text.
	Parameters map[string]any
	// Fallbacks are other models (and providers) tried, for this call
	// only, when every provider of Model failed.
	Fallbacks []Candidate
}

// SpeechResponse is spoken audio.
type SpeechResponse struct {
	// Audio is the audio's bytes; nil with [WithResultURL] when the
	// provider left it at a URL.
	Audio []byte
	// ContentType is the audio's type ("audio/flac", "audio/wav",
	// "audio/mpeg").
	ContentType string
	// URL is where the provider left the audio, if it did.
	URL string
	// Model, Provider and RequestID are as in [ImageResponse].
	Model, Provider, RequestID string
	// Attempts lists every attempt in order; the last one served.
	Attempts []Attempt
	// Skipped are candidates not tried because they were cooling down.
	Skipped []Candidate
}

// The router's tasks beyond text that this client covers, as the Hub names
// them in its provider mappings.
const (
	taskTextToImage  = "text-to-image"
	taskSpeechToText = "automatic-speech-recognition"
	taskTextToSpeech = "text-to-speech"
)

// TextToImage generates an image through the router: the same token
// chain, kinds, retries, cooldowns, per-call options and observer
// (operation "text_to_image") as [Client.Chat], walking the model's
// providers for text-to-image in the Hub's order, then the request's
// Fallbacks. A provider that queues the work (fal-ai, Replicate,
// wavespeed, zai-org) runs a job: submitted, polled through the router
// under [WithJobDeadline], reported to [WithProgress], and cancelled at the
// provider when the call stops waiting (its context ends, or a hedge won).
// The image is downloaded from where the provider left it without the
// token ([WithResultURL] returns the URL instead), up to
// [WithMaxResultSize]. An image a provider flags as not safe for work is
// a content-policy refusal ([ErrInvalidRequest], code
// content_policy_violation), which ends the walk; an answer that is not an
// image is [ErrProvider] naming the provider. With [WithHedge], a second
// provider may be asked while the first has not answered, or not accepted
// its job; a job once accepted is never duplicated.
func (c *Client) TextToImage(ctx context.Context, req ImageRequest, opts ...Option) (*ImageResponse, error) {
	m := &mediaCall{task: taskTextToImage, in: mediaInput{text: req.Prompt, params: imageParams(&req)}}
	out, err := c.runMedia(ctx, m, "image from", "text_to_image", opts, req.Model, req.Provider, req.Fallbacks, req.validate)
	if err != nil {
		return nil, err
	}
	return &ImageResponse{Image: out.file, ContentType: out.contentType, URL: out.url, Seed: out.seed,
		Model: out.cand.Model, Provider: out.provider, RequestID: out.requestID, Attempts: m.attempts, Skipped: m.skipped}, nil
}

// Transcribe turns a recording into text through the router, walking the
// model's providers for automatic-speech-recognition as [Client.TextToImage]
// walks image providers (operation "speech_to_text"). A Replicate
// prediction is polled until it succeeds.
func (c *Client) Transcribe(ctx context.Context, req TranscribeRequest, opts ...Option) (*Transcript, error) {
	m := &mediaCall{task: taskSpeechToText, in: mediaInput{audio: req.Audio, audioType: req.ContentType, language: req.Language}}
	validate := func() error {
		var err error
		m.in.audioType, err = req.validate()
		return err
	}
	out, err := c.runMedia(ctx, m, "transcript from", "speech_to_text", opts, req.Model, req.Provider, req.Fallbacks, validate)
	if err != nil {
		return nil, err
	}
	return &Transcript{Text: out.text, Chunks: out.chunks, Model: out.cand.Model, Provider: out.provider,
		RequestID: out.requestID, Attempts: m.attempts, Skipped: m.skipped}, nil
}

// Speak turns text into spoken audio through the router, walking the
// model's providers for text-to-speech as [Client.TextToImage] walks image
// providers (operation "text_to_speech").
func (c *Client) Speak(ctx context.Context, req SpeechRequest, opts ...Option) (*SpeechResponse, error) {
	m := &mediaCall{task: taskTextToSpeech, in: mediaInput{text: req.Text, voice: req.Voice, params: req.Parameters}}
	out, err := c.runMedia(ctx, m, "speech from", "text_to_speech", opts, req.Model, req.Provider, req.Fallbacks, req.validate)
	if err != nil {
		return nil, err
	}
	return &SpeechResponse{Audio: out.file, ContentType: out.contentType, URL: out.url, Model: out.cand.Model,
		Provider: out.provider, RequestID: out.requestID, Attempts: m.attempts, Skipped: m.skipped}, nil
}

// runMedia runs a media call: it begins the call (options, validation,
// observer), walks the model's providers for the task, and ends the call.
func (c *Client) runMedia(ctx context.Context, m *mediaCall, op, operation string, opts []Option,
	model, provider string, fallbacks []Candidate, validate func() error) (*mediaOut, error) {
	ctx, err := c.begin(ctx, &m.call, op, opts, validate, func() CallInfo {
		return CallInfo{Operation: operation, Model: model, Provider: provider}
	})
	if err != nil {
		return nil, err
	}
	out, err := m.run(ctx, Candidate{Model: model, Provider: provider}, fallbacks)
	var res CallResult
	if out != nil {
		res = CallResult{ID: out.requestID, Model: out.cand.Model, Provider: out.provider, Attempts: m.attempts, Skipped: m.skipped}
	}
	m.end(res, err)
	return out, err
}

func (r *ImageRequest) validate() error {
	if err := validateWalk(r.Model, r.Provider, r.Fallbacks); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(r.Prompt) == "":
		return invalidRequest("the prompt is empty")
	case r.Width < 0 || r.Height < 0 || r.Steps < 0:
		return invalidRequest("Width, Height and Steps may not be negative")
	}
	return checkParameters(r.Parameters)
}

// checkParameters refuses parameters that cannot be sent as JSON.
func checkParameters(p map[string]any) error {
	if _, err := json.Marshal(p); err != nil {
		return invalidRequest("Parameters cannot be sent as JSON: %s", err)
	}
	return nil
}

// validate checks the request and returns the audio's content type, the
// request's or sniffed.
func (r *TranscribeRequest) validate() (string, error) {
	if err := validateWalk(r.Model, r.Provider, r.Fallbacks); err != nil {
		return "", err
	}
	if len(r.Audio) == 0 {
		return "", invalidRequest("no audio")
	}
	if strings.ContainsFunc(r.Language, func(c rune) bool { return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') }) || len(r.Language) > 16 {
		return "", invalidRequest("Language %q is not a language code", cleanText(r.Language, 32))
	}
	ct := r.ContentType
	if ct == "" {
		ct = sniffAudio(r.Audio)
		if ct == "" {
			return "", invalidRequest("the audio's type cannot be told from its bytes: set ContentType (\"audio/wav\", \"audio/mpeg\", \"audio/flac\")")
		}
		return ct, nil
	}
	base, _, err := mime.ParseMediaType(ct)
	if err != nil || !(strings.HasPrefix(base, "audio/") || strings.HasPrefix(base, "video/") || base == "application/ogg") {
		return "", invalidRequest("ContentType %q is not an audio type", cleanText(ct, 64))
	}
	return ct, nil
}

func (r *SpeechRequest) validate() error {
	if err := validateWalk(r.Model, r.Provider, r.Fallbacks); err != nil {
		return err
	}
	if strings.TrimSpace(r.Text) == "" {
		return invalidRequest("the text is empty")
	}
	return checkParameters(r.Parameters)
}

// sniffAudio is an audio type told from its first bytes, "" when none is.
func sniffAudio(data []byte) string {
	if len(data) >= 4 && string(data[:4]) == "fLaC" {
		return "audio/flac" // Go's sniffer does not know FLAC
	}
	ct := http.DetectContentType(data)
	base, _, _ := strings.Cut(ct, ";")
	if strings.HasPrefix(base, "audio/") || strings.HasPrefix(base, "video/") || base == "application/ogg" {
		return base
	}
	return ""
}

// imageParams are an image request's typed fields under Hugging Face's
// parameter names, then its Parameters over them.
func imageParams(r *ImageRequest) map[string]any {
	p := make(map[string]any, 6+len(r.Parameters))
	if r.NegativePrompt != "" {
		p["negative_prompt"] = r.NegativePrompt
	}
	if r.Width > 0 {
		p["width"] = r.Width
	}
	if r.Height > 0 {
		p["height"] = r.Height
	}
	if r.Steps > 0 {
		p["num_inference_steps"] = r.Steps
	}
	if r.GuidanceScale != nil {
		p["guidance_scale"] = *r.GuidanceScale
	}
	if r.Seed != nil {
		p["seed"] = *r.Seed
	}
	for k, v := range r.Parameters {
		p[k] = v
	}
	return p
}
