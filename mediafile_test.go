package inference

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsonEscaped is b64 as a JSON encoder may write it inside a string:
// every '/' as "\/", and a line break ("\n") every 76 characters.
func jsonEscaped(b64 string, slashes, wrap bool) string {
	var b strings.Builder
	for i := 0; i < len(b64); i++ {
		if wrap && i > 0 && i%76 == 0 {
			b.WriteString(`\n`)
		}
		if slashes && b64[i] == '/' {
			b.WriteString(`\/`)
			continue
		}
		b.WriteByte(b64[i])
	}
	return b.String()
}

// The in-place decoder gives what encoding/base64 gives, for every size
// (stretches of 4 KiB cross escapes and quanta at every offset), with and
// without padding and JSON escapes; the bytes it returns live at the
// start of its own buffer.
func TestDecodeBase64InPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(36, 1))
	sizes := []int{0, 1, 2, 3, 4, 5, 767, 768, 769, 3071, 3072, 3073, 3074, 6144, 9000, 100_000}
	for range 40 {
		sizes = append(sizes, rng.IntN(20_000))
	}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		for _, form := range []struct {
			name                 string
			enc                  *base64.Encoding
			slashes, wrap, plain bool
		}{{"padded", base64.StdEncoding, false, false, true}, {"unpadded", base64.RawStdEncoding, false, false, true},
			{"escaped slashes", base64.StdEncoding, true, false, false}, {"wrapped", base64.StdEncoding, true, true, false}} {
			text := jsonEscaped(form.enc.EncodeToString(data), form.slashes, form.wrap)
			buf := []byte(text)
			got, err := decodeBase64InPlace(buf)
			require.NoError(t, err, "%d bytes, %s", size, form.name)
			require.Equal(t, data, got, "%d bytes, %s", size, form.name)
			if len(got) > 0 {
				assert.Same(t, &buf[0], &got[0], "decoded in its own buffer")
			}
		}
	}
}

func TestDecodeBase64InPlaceRefuses(t *testing.T) {
	for _, bad := range []string{"A", "AAAAA", "AA==AAAA", "!!!!", `AA\x`, `AA\`, `\u00zz`, "AAA=AAAA"} {
		_, err := decodeBase64InPlace([]byte(bad))
		assert.Error(t, err, bad)
	}
	got, err := decodeBase64InPlace([]byte(`\u0041\u0041\u0041\u0041`))
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0, 0}, got, "a \\u escape of a base64 character")
}

func TestDecodeDataURL(t *testing.T) {
	ct, data, err := decodeDataURL([]byte("data:image/png;base64," + base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n"))))
	require.NoError(t, err)
	assert.Equal(t, "image/png", ct)
	assert.Equal(t, []byte("\x89PNG\r\n"), data)
	for _, bad := range []string{"data:image/png,raw", "data:image/png;base64", "data:;base64,!!"} {
		_, _, err := decodeDataURL([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// FuzzDecodeBase64InPlace: whatever the text, the decoder never panics,
// and on valid base64 agrees with encoding/base64.
func FuzzDecodeBase64InPlace(f *testing.F) {
	for _, s := range []string{"", "QUJD", "QUI=", "QUI", `QU\/J`, `\n`, "====", "QUJDRA==QQ=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, err := decodeBase64InPlace([]byte(text))
		if !strings.ContainsAny(text, "\\\r\n") && len(text)%4 == 0 {
			want, werr := base64.StdEncoding.DecodeString(text)
			if werr == nil {
				require.NoError(t, err)
				assert.True(t, bytes.Equal(want, got))
			}
		}
		if err == nil {
			assert.LessOrEqual(t, len(got), len(text))
		}
	})
}

// A provider's answer cannot make a server download from its own local
// services: a result URL on this machine is taken only when the router is
// on it too (a test's fake).
func TestResultURLChecks(t *testing.T) {
	remote, err := NewClient(WithBaseURL("https://router.example"), WithToken(testToken))
	require.NoError(t, err)
	local, err := NewClient(WithBaseURL("http://127.0.0.1:9"), WithToken(testToken))
	require.NoError(t, err)
	m := &mediaCall{}
	m.c = remote
	assert.NoError(t, m.checkResultURL("https://cdn.example/out-0.png?sig=1"))
	for _, bad := range []string{"http://cdn.example/x.png", "https://127.0.0.1/x", "http://localhost:8080/x", "https://[::1]/x",
		"ftp://cdn.example/x", "/files/x", "https://user:pw@cdn.example/x"} {
		assert.Error(t, m.checkResultURL(bad), bad)
	}
	m.c = local
	assert.NoError(t, m.checkResultURL("http://127.0.0.1:4242/files/1/out.png"), "a test's CDN")
	assert.Error(t, m.checkResultURL("http://cdn.example/x.png"), "plain http elsewhere, still not")
}
