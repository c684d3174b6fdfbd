package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ev struct{ Type, ID, Data string }

func readAll(t testing.TB, r io.Reader, max int) ([]ev, error) {
	t.Helper()
	rd := NewReader(r, max)
	var out []ev
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev{e.Type, e.ID, string(e.Data)})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ev
	}{
		{"lf", "data: a\n\ndata: b\n\n", []ev{{Data: "a"}, {Data: "b"}}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []ev{{Data: "a"}, {Data: "b"}}},
		{"lone cr", "data: a\r\rdata: b\r\r", []ev{{Data: "a"}, {Data: "b"}}},
		{"multi-line data joined", "data: one\ndata: two\ndata:three\n\n", []ev{{Data: "one\ntwo\nthree"}}},
		{"comments ignored", ": keep-alive\n\n:another\ndata: x\n\n", []ev{{Data: "x"}}},
		{"event and id", "event: error\nid: 7\ndata: {}\n\ndata: y\n\n", []ev{{Type: "error", ID: "7", Data: "{}"}, {ID: "7", Data: "y"}}},
		{"only one leading space stripped", "data:  two spaces\n\n", []ev{{Data: " two spaces"}}},
		{"no colon field", "data\n\n", []ev{{Data: ""}}},
		{"unknown fields and retry ignored", "retry: 100\nfoo: bar\ndata: z\n\n", []ev{{Data: "z"}}},
		{"blank lines without data", "\n\n\nevent: ping\n\ndata: a\n\n", []ev{{Data: "a"}}},
		{"last event without blank line", "data: a\n\ndata: [DONE]", []ev{{Data: "a"}, {Data: "[DONE]"}}},
		{"id with NUL ignored", "id: a\x00b\ndata: x\n\n", []ev{{Data: "x"}}},
		{"empty stream", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(t, strings.NewReader(tt.in), 0)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			// The same bytes delivered one at a time give the same events.
			got, err = readAll(t, iotest.OneByteReader(strings.NewReader(tt.in)), 0)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLargeEventArrivesIntact(t *testing.T) {
	big := strings.Repeat("é🧬a", 500<<10/7) // about 500 KiB of multi-byte UTF-8
	got, err := readAll(t, strings.NewReader("data: "+big+"\n\ndata: next\n\n"), 0)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, big, got[0].Data)
	assert.Equal(t, "next", got[1].Data)
}

func TestEventTooLarge(t *testing.T) {
	_, err := readAll(t, strings.NewReader("data: "+strings.Repeat("x", 200)+"\n\n"), 100)
	assert.ErrorIs(t, err, ErrEventTooLarge)
	_, err = readAll(t, strings.NewReader(strings.Repeat("data: "+strings.Repeat("x", 40)+"\n", 5)+"\n"), 100)
	assert.ErrorIs(t, err, ErrEventTooLarge)
}

func TestReaderErrorPassesThrough(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := readAll(t, io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)), 0)
	assert.ErrorIs(t, err, boom)
}

func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		"data: a\n\n", "data: a\r\n\r\n", "data: a\r\r", ": c\ndata: x\ndata: y\n\n", "event: error\ndata: {\"error\":\"x\"}\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\ndata: [DONE]\n\n", "data", "\r", "\r\n\r\n", "id: 1\nretry: 5\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 1 << 10
		a, errA := readAll(t, bytes.NewReader(in), max)
		b, errB := readAll(t, iotest.OneByteReader(bytes.NewReader(in)), max)
		// Chunking never changes the events, and no event exceeds the cap.
		assert.Equal(t, a, b)
		assert.Equal(t, errA == nil, errB == nil)
		for _, e := range a {
			assert.LessOrEqual(t, len(e.Data), max)
		}
	})
}

func TestEmptyErrorEventIsDispatched(t *testing.T) {
	r := NewReader(strings.NewReader("data: a\n\nevent: error\n\nevent: ping\n\nevent: error\n"), 0)
	var got []Event
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		got = append(got, Event{Type: ev.Type, Data: append([]byte(nil), ev.Data...)})
	}
	require.Len(t, got, 3)
	assert.Equal(t, "error", got[1].Type)
	assert.Empty(t, got[1].Data)
	assert.Equal(t, "error", got[2].Type, "an error event at the end of the stream counts too")
}
