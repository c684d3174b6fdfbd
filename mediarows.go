package inference

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hfkit/inference/internal/jsonread"
)

// The table of images and audio: one row per provider and task, as
// @huggingface/inference's provider helpers (packages/inference/src/providers)
// call them through the router. A row says where the request goes (under
// {router}/{provider}), what its body is, whether the provider answers at
// once or runs a job (job.go), and how the answer holding the result is
// read. A new provider is a new row.

// mediaRow is how one provider serves one task.
type mediaRow struct {
	provider, task string
	// route is the path under {router}/{provider} for the provider's id
	// of the model (the Hub id for hf-inference).
	route func(id string) string
	// body is the request for in, and its content type ("" for JSON).
	body func(in *mediaInput, id string) ([]byte, string, error)
	// header is sent with the submission (zai-org's channel).
	header http.Header
	// job is the provider's protocol for a queued job; nil when the
	// answer is the result.
	job *jobProtocol
	// decode reads the answer that holds the result: the direct answer,
	// or the job's result. nil: the answer is the file itself.
	decode func(data []byte, out *mediaOut) error
}

// protocol names how the row's provider answers, for the README's table:
// "direct", "queued" or "prediction".
func (r *mediaRow) protocol() string {
	if r.job == nil {
		return "direct"
	}
	return r.job.kind
}

// mediaInput is a media request as the rows read it.
type mediaInput struct {
	// text is the image's prompt, or the text to speak.
	text string
	// params are the request's parameters under Hugging Face's names
	// (ImageRequest's typed fields, then Parameters), never modified.
	params map[string]any
	voice  string
	// audio, its content type and language are a transcription's.
	audio     []byte
	audioType string
	language  string
}

// mediaOut is what an attempt got: a file (its bytes, or a reference to
// it in the answer), or a transcript.
type mediaOut struct {
	file        []byte
	contentType string
	// ref is where the answer left the file: the JSON string as it stands
	// in the answer (quotes included), a URL or a data URL, or base64 when
	// refBase64. refText: the file is a transcript's text.
	ref       []byte
	refBase64 bool
	refText   bool
	url       string
	text      string
	chunks    []TranscriptChunk
	seed      *uint64
	// provider served; requestID is the job's id, else the answer's;
	// cand is the candidate that served.
	provider  string
	requestID string
	cand      Candidate
}

var mediaRows = []mediaRow{
	// text-to-image
	{provider: "hf-inference", task: taskTextToImage, route: hfModelRoute, body: hfInputsBody},
	{provider: "together", task: taskTextToImage, route: fixedRoute("/v1/images/generations"), body: openAIImagesBody("base64", true), decode: decodeImagesData},
	{provider: "nscale", task: taskTextToImage, route: fixedRoute("/v1/images/generations"), body: openAIImagesBody("b64_json", false), decode: decodeImagesData},
	{provider: "fal-ai", task: taskTextToImage, route: falQueueRoute, body: falImageBody, job: falQueue, decode: decodeFalImages},
	{provider: "replicate", task: taskTextToImage, route: replicateRoute, body: replicateBody("prompt"), job: replicatePrediction, decode: decodeReplicateFile},
	{provider: "wavespeed", task: taskTextToImage, route: wavespeedRoute, body: promptBody(false), job: wavespeedTask, decode: decodeWavespeed},
	{provider: "zai-org", task: taskTextToImage, route: fixedRoute("/api/paas/v4/async/images/generations"), body: promptBody(true), header: zaiHeader, job: zaiTask, decode: decodeZai},

	// automatic-speech-recognition
	{provider: "hf-inference", task: taskSpeechToText, route: hfModelRoute, body: rawAudioBody, decode: decodeTranscript},
	{provider: "fal-ai", task: taskSpeechToText, route: falRoute, body: falAudioBody, decode: decodeTranscript},
	{provider: "together", task: taskSpeechToText, route: fixedRoute("/v1/audio/transcriptions"), body: audioFormBody, decode: decodeTranscript},
	{provider: "deepinfra", task: taskSpeechToText, route: fixedRoute("/v1/openai/audio/transcriptions"), body: audioFormBody, decode: decodeTranscript},
	{provider: "replicate", task: taskSpeechToText, route: replicateRoute, body: replicateAudioBody, job: replicatePrediction, decode: decodeReplicateTranscript},

	// text-to-speech
	{provider: "hf-inference", task: taskTextToSpeech, route: hfModelRoute, body: hfInputsBody},
	{provider: "fal-ai", task: taskTextToSpeech, route: falRoute, body: speechBody("text", false, ""), decode: decodeFalAudio},
	{provider: "together", task: taskTextToSpeech, route: fixedRoute("/v1/audio/speech"), body: speechBody("input", true, "af_alloy")},
	{provider: "deepinfra", task: taskTextToSpeech, route: fixedRoute("/v1/openai/audio/speech"), body: speechBody("input", true, "")},
	{provider: "replicate", task: taskTextToSpeech, route: replicateRoute, body: replicateBody("text"), job: replicatePrediction, decode: decodeReplicateFile},
}

// mediaRowFor is the row of provider for task, or nil.
func mediaRowFor(provider, task string) *mediaRow {
	for i := range mediaRows {
		if mediaRows[i].provider == provider && mediaRows[i].task == task {
			return &mediaRows[i]
		}
	}
	return nil
}

// zaiHeader is what zai-org's API asks of every request.
var zaiHeader = http.Header{"X-Source-Channel": {"hugging_face"}, "Accept-Language": {"en-US,en"}}

// Routes.

func hfModelRoute(id string) string { return "/models/" + escapeModelID(id) }

func fixedRoute(path string) func(string) string { return func(string) string { return path } }

func falRoute(id string) string { return "/" + escapeModelID(id) }

// falQueueRoute submits to fal's queue, which the router reaches with the
// _subdomain parameter.
func falQueueRoute(id string) string { return falRoute(id) + "?_subdomain=queue" }

// replicateRoute runs a model's latest version, or the version an id of
// the form "owner/model:version" names.
func replicateRoute(id string) string {
	if _, _, pinned := strings.Cut(id, ":"); pinned {
		return "/v1/predictions"
	}
	return "/v1/models/" + escapeModelID(id) + "/predictions"
}

func wavespeedRoute(id string) string { return "/api/v3/" + escapeModelID(id) }

// Bodies.

// jsonBody is params with fixed (key, value pairs) over them: the prompt
// and the provider's model id always win over a parameter of that name.
func jsonBody(params map[string]any, fixed ...any) map[string]any {
	out := make(map[string]any, len(params)+len(fixed)/2)
	maps.Copy(out, params)
	for i := 0; i+1 < len(fixed); i += 2 {
		if fixed[i+1] != nil {
			out[fixed[i].(string)] = fixed[i+1]
		}
	}
	return out
}

func marshal(v any) ([]byte, string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, "", invalidRequest("the parameters cannot be sent as JSON: %s", err)
	}
	return data, "", nil
}

// hfInputsBody is hf-inference's {"inputs": text, "parameters": {...}}.
func hfInputsBody(in *mediaInput, _ string) ([]byte, string, error) {
	body := map[string]any{"inputs": in.text}
	if len(in.params) > 0 {
		body["parameters"] = in.params
	}
	return marshal(body)
}

// openAIImagesBody is the images endpoint of Together and nscale:
// {prompt, model, response_format, ...parameters}; Together names the
// steps "steps".
func openAIImagesBody(format string, steps bool) func(*mediaInput, string) ([]byte, string, error) {
	return func(in *mediaInput, id string) ([]byte, string, error) {
		body := jsonBody(in.params, "prompt", in.text, "model", id, "response_format", format)
		if n, ok := body["num_inference_steps"]; ok && steps {
			if _, set := body["steps"]; !set {
				body["steps"] = n
			}
			delete(body, "num_inference_steps")
		}
		return marshal(body)
	}
}

// falImageBody is fal's {prompt, ...parameters}, a width and height given
// as fal's image_size.
func falImageBody(in *mediaInput, _ string) ([]byte, string, error) {
	body := jsonBody(in.params, "prompt", in.text)
	w, okW := body["width"]
	h, okH := body["height"]
	if _, set := body["image_size"]; okW && okH && !set {
		body["image_size"] = map[string]any{"width": w, "height": h}
		delete(body, "width")
		delete(body, "height")
	}
	return marshal(body)
}

// promptBody is {prompt, ...parameters}, with the provider's model id
// when withModel (zai-org's; wavespeed's is in its route).
func promptBody(withModel bool) func(*mediaInput, string) ([]byte, string, error) {
	return func(in *mediaInput, id string) ([]byte, string, error) {
		var model any
		if withModel {
			model = id
		}
		return marshal(jsonBody(in.params, "prompt", in.text, "model", model))
	}
}

// replicateBody is a prediction's {"input": {key: text, ...parameters},
// "version"} (the version when the id pins one).
func replicateBody(key string) func(*mediaInput, string) ([]byte, string, error) {
	return func(in *mediaInput, id string) ([]byte, string, error) {
		var voice any
		if in.voice != "" {
			voice = in.voice
		}
		return marshal(predictionBody(id, jsonBody(in.params, key, in.text, "voice", voice)))
	}
}

// predictionBody wraps a prediction's input.
func predictionBody(id string, input map[string]any) map[string]any {
	body := map[string]any{"input": input}
	if _, version, pinned := strings.Cut(id, ":"); pinned {
		body["version"] = version
	}
	return body
}

// speechBody is a text-to-speech endpoint's {key: text, ...parameters},
// with the provider's model id when withModel, and the voice (or
// defaultVoice for a Kokoro model, which Together requires).
func speechBody(key string, withModel bool, defaultVoice string) func(*mediaInput, string) ([]byte, string, error) {
	return func(in *mediaInput, id string) ([]byte, string, error) {
		var model, voice any
		if withModel {
			model = id
		}
		switch _, set := in.params["voice"]; {
		case in.voice != "":
			voice = in.voice
		case !set && defaultVoice != "" && strings.Contains(strings.ToLower(id), "kokoro"):
			voice = defaultVoice
		}
		return marshal(jsonBody(in.params, key, in.text, "model", model, "voice", voice))
	}
}

// rawAudioBody is the recording as it is, which hf-inference takes: the
// request's own bytes, not a copy.
func rawAudioBody(in *mediaInput, _ string) ([]byte, string, error) {
	return in.audio, in.audioType, nil
}

// falAudioBody is fal's {"audio_url": "data:...;base64,...", "language"}.
func falAudioBody(in *mediaInput, _ string) ([]byte, string, error) {
	return audioJSON(map[string]any{"audio_url": audioPlaceholder, "language": optional(in.language)}, falAudioType(in.audioType), in.audio)
}

// replicateAudioBody is a prediction whose input's audio is a data URL.
func replicateAudioBody(in *mediaInput, id string) ([]byte, string, error) {
	body := predictionBody(id, map[string]any{"audio": audioPlaceholder, "language": optional(in.language)})
	return audioJSON(body, in.audioType, in.audio)
}

// optional is s, or nil (left out) when empty.
func optional(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// audioPlaceholder stands for the audio in a body before it is encoded.
const audioPlaceholder = "\x00hfkit-audio\x00"

// audioJSON marshals body, whose one audioPlaceholder value becomes the
// audio as a data URL of type ct: the base64 is written once, straight
// into a body of its final size. Nil values are left out.
func audioJSON(body map[string]any, ct string, audio []byte) ([]byte, string, error) {
	dropNil(body)
	head, _, err := marshal(body)
	if err != nil {
		return nil, "", err
	}
	mark, _ := json.Marshal(audioPlaceholder)
	i := bytes.Index(head, mark)
	if i < 0 {
		return nil, "", errors.New("inference: the audio's place is missing from the body") // a row's mistake
	}
	prefix := `"data:` + ct + `;base64,`
	out := make([]byte, 0, len(head)-len(mark)+len(prefix)+base64.StdEncoding.EncodedLen(len(audio))+1)
	out = append(out, head[:i]...)
	out = append(out, prefix...)
	out = base64.StdEncoding.AppendEncode(out, audio)
	out = append(out, '"')
	out = append(out, head[i+len(mark):]...)
	return out, "", nil
}

// dropNil removes nil values, at any depth of maps.
func dropNil(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNil(v)
		}
	}
}

// falAudioType is the type fal's data URL decoder takes for ct: it maps a
// type to a file extension and refuses others ("Unsupported data URL"),
// and knows some types by another name.
func falAudioType(ct string) string {
	base, _, _ := strings.Cut(ct, ";")
	switch strings.ToLower(strings.TrimSpace(base)) {
	case "audio/mpeg", "audio/mp3":
		return "audio/mpeg"
	case "audio/wav", "audio/wave", "audio/x-wav":
		return "audio/x-wav"
	case "audio/webm", "video/webm":
		return "video/webm"
	}
	return base
}

// audioFormBody is OpenAI's multipart transcription request (Together,
// DeepInfra): the file, the provider's model id, the language.
func audioFormBody(in *mediaInput, id string) ([]byte, string, error) {
	var b bytes.Buffer
	b.Grow(len(in.audio) + 1024)
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="audio.`+audioExtension(in.audioType)+`"`)
	h.Set("Content-Type", in.audioType)
	part, err := w.CreatePart(h)
	if err == nil {
		_, err = part.Write(in.audio)
	}
	if err == nil {
		err = w.WriteField("model", id)
	}
	if err == nil && in.language != "" {
		err = w.WriteField("language", in.language)
	}
	if err == nil {
		err = w.Close()
	}
	return b.Bytes(), w.FormDataContentType(), err
}

// audioExtension is the file extension the transcription endpoints tell
// a format by.
func audioExtension(ct string) string {
	base, _, _ := strings.Cut(ct, ";")
	switch strings.ToLower(strings.TrimSpace(base)) {
	case "audio/mpeg", "audio/mp3":
		return "mp3"
	case "audio/flac", "audio/x-flac":
		return "flac"
	case "audio/ogg", "application/ogg":
		return "ogg"
	case "audio/webm", "video/webm":
		return "webm"
	case "audio/mp4", "video/mp4":
		return "mp4"
	case "audio/m4a", "audio/x-m4a":
		return "m4a"
	}
	return "wav"
}

// Answers.

// jsonRef keeps a JSON string as it stands in the answer, quotes and
// escapes included, without copying it: a file's base64 is most of an
// answer, and is decoded in place later (mediafile.go).
type jsonRef []byte

func (r *jsonRef) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		*r = b
	case string(b) == "null":
		*r = nil
	default:
		return errors.New("a file's reference is not a string")
	}
	return nil
}

// errFlagged is an answer whose provider flagged its result as not safe
// for work: a content-policy refusal, never a blank image.
var errFlagged = errors.New("the provider flagged the result as not safe for work")

// The two answers that carry a whole file in base64 (the images
// endpoint's, fal's sync_mode data URL) are read first with
// internal/jsonread, which scans the file's string at memory speed and
// does not copy it; what it declines (a name that differs only in case, a
// repeated name, an odd kind) goes to encoding/json, which gives the same.
var (
	imagesKeys   = []string{"data"}
	imageKeys    = []string{"b64_json", "url"}
	falKeys      = []string{"images", "seed", "has_nsfw_concepts"}
	falImageKeys = []string{"url", "content_type"}
)

// fileWire is where an answer left its file, as either reader reads it.
type fileWire struct {
	b64, url    jsonRef
	contentType string
	seed        string
	flagged     bool
}

// stringRef reads a string as it stands (a jsonRef), or null (nil); any
// other kind fails the reader.
func stringRef(r *jsonread.Reader) jsonRef {
	if r.Null() {
		return nil
	}
	if r.Peek() != jsonread.String {
		r.Fail()
		return nil
	}
	return r.Skip()
}

// firstObject reads an array (null: none) whose first object's members,
// among keys, read reads; the other elements are skipped.
func firstObject(r *jsonread.Reader, keys []string, read func(i int)) {
	if r.Null() {
		return
	}
	r.Array()
	for n := 0; r.More(']'); n++ {
		if n > 0 {
			r.Skip()
			continue
		}
		var seen uint16
		r.Object()
		for r.More('}') {
			if i := member(r, keys, &seen); i >= 0 {
				read(i)
			} else {
				r.Skip()
			}
		}
	}
}

// decodeImagesData reads the images endpoint's {"data": [{"b64_json"} or
// {"url"}]}.
func decodeImagesData(data []byte, out *mediaOut) error {
	var w fileWire
	var r jsonread.Reader
	r.Reset(data)
	var seen uint16
	r.Object()
	for r.More('}') {
		if member(&r, imagesKeys, &seen) < 0 {
			r.Skip()
			continue
		}
		firstObject(&r, imageKeys, func(i int) {
			if i == 0 {
				w.b64 = stringRef(&r)
			} else {
				w.url = stringRef(&r)
			}
		})
	}
	if !r.End() {
		var slow struct {
			Data []struct {
				B64 jsonRef `json:"b64_json"`
				URL jsonRef `json:"url"`
			} `json:"data"`
		}
		if err := json.Unmarshal(data, &slow); err != nil {
			return errors.New("the answer is not the images endpoint's JSON")
		}
		if len(slow.Data) > 0 {
			w.b64, w.url = slow.Data[0].B64, slow.Data[0].URL
		}
	}
	switch {
	case len(w.b64) > 0:
		out.ref, out.refBase64 = w.b64, true
	case len(w.url) > 0:
		out.ref = w.url
	default:
		return errors.New("the answer holds no image")
	}
	return nil
}

// decodeFalImages reads fal's {"images": [{"url", "content_type"}],
// "seed", "has_nsfw_concepts"}; a url may be a data URL (sync_mode).
func decodeFalImages(data []byte, out *mediaOut) error {
	var w fileWire
	var r jsonread.Reader
	r.Reset(data)
	var seen uint16
	r.Object()
	for r.More('}') {
		switch member(&r, falKeys, &seen) {
		case 0:
			firstObject(&r, falImageKeys, func(i int) {
				if i == 0 {
					w.url = stringRef(&r)
				} else if !r.Null() {
					w.contentType = r.String()
				}
			})
		case 1:
			if r.Peek() == jsonread.Number {
				w.seed = string(r.Skip())
			} else {
				r.Fail() // null, or a kind encoding/json refuses: it decides
			}
		case 2:
			if r.Null() {
				break
			}
			r.Array()
			for n := 0; r.More(']'); n++ {
				switch v := string(r.Skip()); {
				case n > 0:
				case v == "true":
					w.flagged = true
				case v != "false":
					r.Fail() // a kind encoding/json decides on
				}
			}
		default:
			r.Skip()
		}
	}
	if !r.End() {
		var slow struct {
			Images []struct {
				URL         jsonRef `json:"url"`
				ContentType string  `json:"content_type"`
			} `json:"images"`
			Seed json.Number `json:"seed"`
			NSFW []bool      `json:"has_nsfw_concepts"`
		}
		if err := json.Unmarshal(data, &slow); err != nil {
			return errors.New("the answer is not fal's image result")
		}
		w = fileWire{seed: slow.Seed.String(), flagged: len(slow.NSFW) > 0 && slow.NSFW[0]}
		if len(slow.Images) > 0 {
			w.url, w.contentType = slow.Images[0].URL, slow.Images[0].ContentType
		}
	}
	if w.flagged {
		return errFlagged
	}
	if len(w.url) == 0 {
		return errors.New("the answer holds no image")
	}
	out.ref, out.contentType = w.url, w.contentType
	if seed, err := strconv.ParseUint(w.seed, 10, 64); err == nil {
		out.seed = &seed
	}
	return nil
}

// decodeFalAudio reads fal's {"audio": {"url", "content_type"}}.
func decodeFalAudio(data []byte, out *mediaOut) error {
	var w struct {
		Audio struct {
			URL         jsonRef `json:"url"`
			ContentType string  `json:"content_type"`
		} `json:"audio"`
	}
	if err := json.Unmarshal(data, &w); err != nil || len(w.Audio.URL) == 0 {
		return errors.New("the answer is not fal's {\"audio\": {\"url\"}}")
	}
	out.ref, out.contentType = w.Audio.URL, w.Audio.ContentType
	return nil
}

// transcriptWire is every transcript's shape: hf-inference's and fal's
// {"text", "chunks": [{"timestamp": [start, end], "text"}]}, OpenAI's
// (Together, DeepInfra) and Replicate's whisper {"text" or "transcription",
// "segments": [{"start", "end", "text"}]}, fal's nemotron {"output"}.
type transcriptWire struct {
	Text          *string `json:"text"`
	Output        *string `json:"output"`
	Transcription *string `json:"transcription"`
	Translation   *string `json:"translation"`
	Chunks        []struct {
		Timestamp []*float64 `json:"timestamp"`
		Text      string     `json:"text"`
	} `json:"chunks"`
	Segments []struct {
		Start, End *float64
		Text       string `json:"text"`
	} `json:"segments"`
}

// take fills out with the transcript; false when w holds none.
func (w *transcriptWire) take(out *mediaOut) bool {
	for _, text := range []*string{w.Text, w.Transcription, w.Translation, w.Output} {
		if text != nil {
			out.text = *text
			break
		}
	}
	if out.text == "" && w.Text == nil && w.Transcription == nil && w.Translation == nil && w.Output == nil {
		return false
	}
	seconds := func(f *float64) time.Duration {
		if f == nil {
			return 0
		}
		return time.Duration(*f * float64(time.Second))
	}
	for _, c := range w.Chunks {
		chunk := TranscriptChunk{Text: c.Text}
		if len(c.Timestamp) > 0 {
			chunk.Start = seconds(c.Timestamp[0])
		}
		if len(c.Timestamp) > 1 {
			chunk.End = seconds(c.Timestamp[1])
		}
		out.chunks = append(out.chunks, chunk)
	}
	if len(w.Chunks) == 0 {
		for _, s := range w.Segments {
			out.chunks = append(out.chunks, TranscriptChunk{Text: s.Text, Start: seconds(s.Start), End: seconds(s.End)})
		}
	}
	return true
}

// decodeTranscript reads a transcript answered at once.
func decodeTranscript(data []byte, out *mediaOut) error {
	var w transcriptWire
	if err := json.Unmarshal(data, &w); err != nil || !w.take(out) {
		return errors.New("the answer is not a transcript")
	}
	return nil
}

// replicateOutput reads a prediction's output.
func replicateOutput(data []byte) (json.RawMessage, error) {
	var w struct {
		Output json.RawMessage `json:"output"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, errors.New("the answer is not a Replicate prediction")
	}
	return bytes.TrimSpace(w.Output), nil
}

// decodeReplicateFile reads a prediction whose output is a file's URL, or
// a list of them (the first is taken).
func decodeReplicateFile(data []byte, out *mediaOut) error {
	raw, err := replicateOutput(data)
	if err != nil {
		return err
	}
	if ref := firstString(raw); ref != nil {
		out.ref = ref
		return nil
	}
	return errors.New("the prediction's output is not a file's URL")
}

// decodeReplicateTranscript reads a prediction whose output is the text,
// a list of texts, or an object with a transcription, a translation or a
// text file's URL (txt_file).
func decodeReplicateTranscript(data []byte, out *mediaOut) error {
	raw, err := replicateOutput(data)
	if err != nil {
		return err
	}
	if s := firstString(raw); s != nil {
		return json.Unmarshal(s, &out.text)
	}
	var w struct {
		transcriptWire
		TextFile jsonRef `json:"txt_file"`
	}
	if json.Unmarshal(raw, &w) == nil {
		if w.take(out) {
			return nil
		}
		if len(w.TextFile) > 0 {
			out.ref, out.refText = w.TextFile, true
			return nil
		}
	}
	return errors.New("the prediction's output is not a transcript")
}

// firstString is raw when it is a JSON string, or the first string of a
// list; nil otherwise.
func firstString(raw json.RawMessage) jsonRef {
	if len(raw) > 0 && raw[0] == '"' {
		return jsonRef(raw)
	}
	var list []jsonRef
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 && len(list[0]) > 0 {
		return list[0]
	}
	return nil
}

// decodeWavespeed reads wavespeed's {"data": {"outputs": [url],
// "has_nsfw_contents": [bool]}}; an output is the file in bare base64
// when the request asked enable_base64_output.
func decodeWavespeed(data []byte, out *mediaOut) error {
	var w struct {
		Data struct {
			Outputs []jsonRef `json:"outputs"`
			NSFW    []bool    `json:"has_nsfw_contents"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return errors.New("the answer is not wavespeed's result")
	}
	if len(w.Data.NSFW) > 0 && w.Data.NSFW[0] {
		return errFlagged
	}
	if len(w.Data.Outputs) == 0 || len(w.Data.Outputs[0]) == 0 {
		return errors.New("the result holds no output")
	}
	out.ref = w.Data.Outputs[0]
	out.refBase64 = !bytes.ContainsRune(out.ref, ':') // neither a URL nor a data URL
	return nil
}

// decodeZai reads zai-org's {"image_result": [{"url"}]}.
func decodeZai(data []byte, out *mediaOut) error {
	var w struct {
		Images []struct {
			URL jsonRef `json:"url"`
		} `json:"image_result"`
	}
	if err := json.Unmarshal(data, &w); err != nil || len(w.Images) == 0 || len(w.Images[0].URL) == 0 {
		return errors.New("the answer holds no image_result")
	}
	out.ref = w.Images[0].URL
	return nil
}

// pathOf is the path of a URL a provider named (fal's response_url,
// wavespeed's urls.get), to reach it through the router: a clean absolute
// path, or an error.
func pathOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Path == "" || u.Path[0] != '/' {
		return "", fmt.Errorf("%q is not a URL with a path", cleanText(raw, 128))
	}
	for _, seg := range strings.Split(u.Path, "/")[1:] {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("the path %q is not clean", cleanText(u.Path, 128))
		}
	}
	return u.EscapedPath(), nil
}
