package inference

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// A result file comes three ways: as the answer itself (hf-inference), as
// base64 or a data URL inside a JSON answer (Together, nscale, fal's
// sync_mode), or at a URL on the provider's CDN. The first two are read
// once and decoded in the answer's own buffer; the third is downloaded
// without the token, the bill-to or the call's headers. Every way is
// bounded by the result cap, and what arrives must be the file asked for:
// an empty body, a web page, JSON or text is the provider's failure.

// resolve turns the reference an answer left into the file (or the
// transcript's text), or keeps its URL with WithResultURL.
func (m *mediaCall) resolve(ctx context.Context, x exchange, out *mediaOut) error {
	ref := out.ref
	if ref == nil {
		return m.checkFile(x, out)
	}
	inner := ref[1 : len(ref)-1] // the JSON string's content, escapes and all
	switch {
	case out.refBase64:
		file, err := decodeBase64InPlace(inner)
		if err != nil {
			return m.fileFailure(x, "the answer's base64 is not valid: "+err.Error())
		}
		out.file, out.ref = file, nil
		return m.checkFile(x, out)
	case bytes.HasPrefix(inner, []byte("data:")):
		ct, file, err := decodeDataURL(inner)
		if err != nil {
			return m.fileFailure(x, "the answer's data URL is not valid: "+err.Error())
		}
		out.file, out.ref = file, nil
		if out.contentType == "" {
			out.contentType = ct
		}
		return m.checkFile(x, out)
	}
	var link string
	if err := json.Unmarshal(ref, &link); err != nil {
		return m.fileFailure(x, "the result's URL is not a JSON string")
	}
	out.ref, out.url = nil, link
	if out.refText {
		data, _, err := m.fetch(ctx, x, link, maxPollAnswer, false)
		out.text = string(data)
		return err
	}
	if m.cfg.resultURL {
		if err := m.checkResultURL(link); err != nil {
			return m.fileFailure(x, err.Error())
		}
		out.contentType = ""
		return nil
	}
	data, ct, err := m.fetch(ctx, x, link, m.cfg.maxResult, true)
	if err != nil {
		return err
	}
	out.file, out.contentType = data, ct
	return nil
}

// checkFile checks a file an answer held: within the cap, and an image
// or audio as the task asks; its type is the answer's word, else sniffed.
func (m *mediaCall) checkFile(x exchange, out *mediaOut) error {
	if m.task == taskSpeechToText {
		return nil // a transcript
	}
	if int64(len(out.file)) > m.cfg.maxResult {
		e := m.fileFailure(x, "the "+m.what()+" is larger than "+sizeText(m.cfg.maxResult))
		e.overSize = true
		return e
	}
	ct, err := m.fileType(out.contentType, out.file)
	if err != nil {
		return m.fileFailure(x, err.Error())
	}
	out.contentType = ct
	return nil
}

// fileFailure is a result that is not the file asked for: the provider's
// failure, naming it.
func (m *mediaCall) fileFailure(x exchange, why string) *APIError {
	e := m.c.classify(http.StatusOK, http.Header{}, nil, x)
	e.Message = safeText(why, x.tok, maxMessageLen)
	return e
}

// what names the task's file in errors.
func (m *mediaCall) what() string {
	if m.task == taskTextToImage {
		return "image"
	}
	return "audio"
}

// fileType is a file's media type: declared (a Content-Type, fal's
// content_type) when it is of the task's family, else sniffed from its
// bytes; bytes no sniffer knows are taken as application/octet-stream
// when nothing declared otherwise. A file that is empty, whose bytes are a
// web page, JSON or text, or of another family (audio for an image) is
// refused; bytes that are a web page or JSON are refused whatever their
// label says (an SVG, declared, is markup but not a page).
func (m *mediaCall) fileType(declared string, data []byte) (string, error) {
	want := m.what()
	if len(data) == 0 {
		return "", errors.New("the answer is empty, not an " + want)
	}
	base, _, _ := mime.ParseMediaType(declared)
	sniffed, _, _ := strings.Cut(http.DetectContentType(data), ";")
	head := bytes.TrimSpace(data[:min(len(data), 512)])
	brace := len(head) > 0 && (head[0] == '{' || head[0] == '[')
	switch {
	case (sniffed == "text/html" || isHTML(http.Header{}, head)) && !strings.EqualFold(base, "image/svg+xml"):
		return "", errors.New("the answer is a web page, not an " + want)
	case brace && json.Valid(data):
		return "", errors.New("the answer is JSON, not an " + want)
	case m.family(base):
		return mediaType(declared), nil
	}
	if s := sniffAudio(data); s != "" && want == "audio" {
		sniffed = s
	}
	unknown := func(t string) bool { return t == "" || t == "application/octet-stream" || t == "binary/octet-stream" }
	switch {
	case m.family(sniffed):
		return sniffed, nil
	case brace:
		return "", errors.New("the answer is JSON, not an " + want)
	case strings.HasPrefix(sniffed, "text/"):
		return "", errors.New("the answer is text, not an " + want)
	case unknown(sniffed) && unknown(base):
		return "application/octet-stream", nil
	}
	shown := sniffed
	if !unknown(base) {
		shown = base
	}
	return "", fmt.Errorf("the answer is %s, not an %s", cleanText(shown, 64), want)
}

// mediaType is a declared type as parsed and written again, never a
// provider's raw text: its parameters when they are sound and printable,
// else the type alone.
func mediaType(declared string) string {
	base, params, err := mime.ParseMediaType(declared)
	if err != nil {
		return base
	}
	for _, v := range params {
		if strings.ContainsFunc(v, unicode.IsControl) {
			return base
		}
	}
	if s := mime.FormatMediaType(base, params); s != "" {
		return s
	}
	return base
}

// family reports a media type of the task's file: image/* for an image;
// audio/*, video/webm and application/ogg for audio.
func (m *mediaCall) family(base string) bool {
	base = strings.ToLower(base)
	if m.task == taskTextToImage {
		return strings.HasPrefix(base, "image/")
	}
	return strings.HasPrefix(base, "audio/") || base == "video/webm" || base == "application/ogg"
}

// readFile reads an answer that is the file itself, up to the result cap.
// An answer that says it is text or JSON is read only as far as its words.
func (m *mediaCall) readFile(ctx, actx context.Context, resp *http.Response, x exchange) ([]byte, string, error) {
	c := m.c
	declared := resp.Header.Get("Content-Type")
	base, _, _ := mime.ParseMediaType(declared)
	if strings.HasPrefix(base, "text/") || strings.Contains(base, "json") {
		data, _ := readCapped(resp.Body, maxErrorBody, -1)
		why := "the answer is " + cleanText(base, 64) + ", not an " + m.what()
		if strings.Contains(base, "html") {
			why = "the answer is a web page, not an " + m.what()
		}
		return nil, "", c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, why)
	}
	data, err := c.read(ctx, actx, resp, x, int(min(m.cfg.maxResult, 1<<40)))
	if err != nil {
		return nil, "", err
	}
	ct, err := m.fileType(declared, data)
	if err != nil {
		return nil, "", c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, err.Error())
	}
	return data, ct, nil
}

// fetch downloads a result file from where the provider left it: no
// token, no bill-to, none of the call's headers (a CDN is not the
// router). Any failure is the provider's: its file is not there. file
// asks for the task's file (its type checked); otherwise the bytes must be
// text (a transcript's), not a web page.
func (m *mediaCall) fetch(ctx context.Context, attempt exchange, link string, limit int64, file bool) ([]byte, string, error) {
	c := m.c
	// No token: the download goes nowhere near the router. (Providers
	// never see the caller's token, so none can be in what they name.)
	x := exchange{method: http.MethodGet, url: link, accept: "*/*", about: attempt.about, cfg: m.cfg, op: m.op, thirdParty: true}
	if err := m.checkResultURL(link); err != nil {
		return nil, "", m.fileFailure(attempt, err.Error())
	}
	actx, cancel := boundAttempt(ctx, m.cfg)
	defer cancel()
	resp, err := c.send(ctx, actx, x, nil)
	if err != nil {
		return nil, "", cdnFailure(err)
	}
	defer resp.Body.Close()
	if !file {
		data, err := c.read(ctx, actx, resp, x, int(limit))
		switch {
		case err != nil:
			return nil, "", err
		case isHTML(resp.Header, bytes.TrimSpace(data)):
			return nil, "", c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the file is a web page, not text")
		case !isText(data):
			return nil, "", c.notWhatWasAsked(resp.StatusCode, resp.Header, data, x, "the file is not text")
		}
		return data, "", nil
	}
	data, ct, err := m.readFile(ctx, actx, resp, x)
	return data, ct, err
}

// cdnFailure is a download's failure: its status said nothing about the
// token or the model (a CDN's 403 is an expired link, its 404 a file
// gone), so it is the provider's.
func cdnFailure(err error) error {
	var e *APIError
	if errors.As(err, &e) && e.Kind != ErrRateLimited {
		e.Kind = ErrProvider
		if e.StatusCode != 0 {
			e.Message = strings.TrimSuffix("the result file could not be downloaded: "+e.Message, ": ")
		}
	}
	return err
}

// checkResultURL checks a URL a provider left a file at before it is
// downloaded (refusedResultURL).
func (m *mediaCall) checkResultURL(link string) error {
	u, err := url.Parse(link)
	if err != nil {
		return fmt.Errorf("the result's URL %q is not an absolute URL", cleanText(link, 128))
	}
	return refusedResultURL(m.c.base, u)
}

// refusedResultURL says why a result file may not be downloaded from u
// from the caller's network, or nil: u must be absolute, without user
// info, and https; a host on this machine (by name or address, not
// resolved) only when the router (base) is on this machine too (a test's
// fake router and CDN), so that a provider's answer cannot make a server
// fetch its own local services. The download's every redirect is checked
// the same way (thirdPartyRedirect).
func refusedResultURL(base, u *url.URL) error {
	switch {
	case !u.IsAbs() || u.Host == "":
		return fmt.Errorf("the result's URL %q is not an absolute URL", cleanText(u.Redacted(), 128))
	case u.User != nil:
		return errors.New("the result's URL carries user info")
	case onThisMachine(u.Hostname()) && !isLoopback(base.Hostname()):
		return fmt.Errorf("the result's URL %q is on this machine", cleanText(u.String(), 128))
	case u.Scheme == "https", u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("the result's URL %q is not https", cleanText(u.String(), 128))
}

// onThisMachine reports a host that names this machine without a lookup:
// a loopback name or address, the unspecified address (0.0.0.0 and ::
// reach the machine's own services), localhost written with its root dot,
// and the names under .localhost, which RFC 6761 reserves for loopback.
func onThisMachine(host string) bool {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if isLoopback(name) || name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// thirdPartyRedirect is the redirect policy of a result file's download:
// each hop's URL is checked as the file's was (refusedResultURL), then
// next decides.
func thirdPartyRedirect(base *url.URL, next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if err := refusedResultURL(base, req.URL); err != nil {
			return refusedRedirect{err}
		}
		return next(req, via)
	}
}

// refusedRedirect is a download's redirect that thirdPartyRedirect
// refused: trying again would be refused again.
type refusedRedirect struct{ err error }

func (e refusedRedirect) Error() string { return "the download was redirected: " + e.err.Error() }

func (e refusedRedirect) Unwrap() error { return e.err }

// decodeDataURL decodes a data URL (the inside of a JSON string) in its
// own buffer: its media type and its bytes. Only base64 data URLs are
// taken; the providers send no other.
func decodeDataURL(s []byte) (string, []byte, error) {
	comma := bytes.IndexByte(s, ',')
	if comma < 0 {
		return "", nil, errors.New("no comma")
	}
	var head string
	if err := json.Unmarshal(append(append([]byte{'"'}, s[len("data:"):comma]...), '"'), &head); err != nil {
		return "", nil, errors.New("its header is not text")
	}
	ct, ok := strings.CutSuffix(head, ";base64")
	if !ok {
		return "", nil, errors.New("it is not base64")
	}
	data, err := decodeBase64InPlace(s[comma+1:])
	return ct, data, err
}

// decodeBase64InPlace decodes base64 text (standard alphabet, padding
// optional), as it stands inside a JSON string (escapes such as \/ and
// \n allowed), into the start of its own buffer, and returns the decoded
// bytes. The answer's buffer is the only copy of the file: decoding into
// a second buffer would hold the file twice at once. Each stretch of
// text is decoded into a small buffer, then copied down; what is written
// never passes what was read (4 characters make 3 bytes).
func decodeBase64InPlace(s []byte) ([]byte, error) {
	const stretch = 4 << 10 // characters decoded at once, a multiple of 4
	var (
		out     [stretch / 4 * 3]byte
		carry   [4]byte // characters of a quantum cut by an escape or a stretch's end
		ncarry  int
		w       int
		padding bool
	)
	emit := func(src []byte) error {
		if padding {
			return errors.New("data after the padding")
		}
		n, err := base64.StdEncoding.Decode(out[:], src)
		if err != nil {
			return err
		}
		// Read src before the copy, which may overwrite it.
		padding = bytes.IndexByte(src, '=') >= 0
		w += copy(s[w:], out[:n])
		return nil
	}
	take := func(ch byte) error {
		carry[ncarry] = ch
		ncarry++
		if ncarry == 4 {
			ncarry = 0
			return emit(carry[:])
		}
		return nil
	}
	escape := -1 // the next backslash at or after i, once looked for
	for i := 0; i < len(s); {
		if ncarry == 0 {
			// A stretch without escapes, in whole quanta, straight from s.
			if escape < i {
				if escape = bytes.IndexByte(s[i:], '\\'); escape < 0 {
					escape = len(s)
				} else {
					escape += i
				}
			}
			n := min(escape-i, stretch) / 4 * 4
			if n > 0 {
				if err := emit(s[i : i+n]); err != nil {
					return nil, err
				}
				i += n
				continue
			}
		}
		ch := s[i]
		i++
		if ch == '\\' {
			if i >= len(s) {
				return nil, errors.New("a cut escape")
			}
			esc := s[i]
			i++
			switch esc {
			case '/':
				ch = '/'
			case 'n', 'r', 't':
				continue // line breaks in wrapped base64
			case 'u':
				if i+4 > len(s) {
					return nil, errors.New("a cut escape")
				}
				r, err := strconv.ParseUint(string(s[i:i+4]), 16, 8)
				if err != nil {
					return nil, errors.New("an escape that is not a base64 character")
				}
				ch = byte(r)
				i += 4
			default:
				return nil, errors.New("an escape that is not a base64 character")
			}
		}
		if err := take(ch); err != nil {
			return nil, err
		}
	}
	if ncarry > 0 {
		if ncarry == 1 {
			return nil, errors.New("a truncated quantum")
		}
		for range 4 - ncarry { // padding left out
			if err := take('='); err != nil {
				return nil, err
			}
		}
	}
	return s[:w], nil
}
