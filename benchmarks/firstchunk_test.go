package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"

	"github.com/hfkit/inference"
)

// floorFirstChunk sends a stream request with net/http and reads up to its
// first event with content; rest closes it (over HTTP/2 the stream is
// reset and the connection kept).
func floorFirstChunk(base string, t *http.Transport) func(ctx context.Context) (func() error, error) {
	post := floorPost(&http.Client{Transport: t}, base)
	return func(ctx context.Context) (func() error, error) {
		resp, err := post(ctx, modelOK, true)
		if err != nil {
			return nil, err
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				resp.Body.Close()
				return nil, err
			}
			data, ok := bytes.CutPrefix(line, []byte("data: "))
			if !ok {
				continue
			}
			text, err := floorChunkText(data)
			if err != nil {
				resp.Body.Close()
				return nil, err
			}
			if text != "" {
				break
			}
		}
		return func() error { return resp.Body.Close() }, nil
	}
}

// hfkitFirstChunk opens a ChatStream (which returns once the first chunk
// with content has arrived) and takes that chunk.
func hfkitFirstChunk(base string, t *http.Transport) func(ctx context.Context) (func() error, error) {
	c, err := inference.NewClient(inference.WithBaseURL(base), inference.WithToken(token),
		inference.WithRetry(inference.RetryPolicy{}), inference.WithHTTPClient(&http.Client{Transport: t}))
	if err != nil {
		panic(err)
	}
	req := inference.ChatRequest{Model: modelOK, Messages: []inference.Message{inference.UserMessage("hi")}}
	return func(ctx context.Context) (func() error, error) {
		s, err := c.ChatStream(ctx, req)
		if err != nil {
			return nil, err
		}
		if !s.Next() || s.Current().Text() == "" {
			s.Close()
			return nil, errors.Join(errors.New("no first chunk"), s.Err())
		}
		return s.Close, nil
	}
}
