package inference

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGivingUpKeepsThePool shows that go-retryablehttp giving up (retries
// exhausted, or a wait past MaxWait) leaves the connection pool alone:
// calls that exhaust their retries over and over still reuse one
// connection. retryablehttp calls the http.Client's CloseIdleConnections
// when it gives up, which reaches the transport only through a
// RoundTripper that has that method; the client's middleware chain has not.
func TestGivingUpKeepsThePool(t *testing.T) {
	var dials atomic.Int32
	srv := httptest.NewUnstartedServer(status(http.StatusServiceUnavailable, `{"error":"overloaded"}`))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := NewClient(WithBaseURL(srv.URL), WithHubURL("https://hub.example"), WithToken(testToken),
		WithCooldown(0), WithRetry(RetryPolicy{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: time.Millisecond}))
	require.NoError(t, err)
	for range 5 {
		_, err := c.Chat(t.Context(), chatReq("m/a", ""))
		require.ErrorIs(t, err, ErrProvider)
		var fe *FallbackError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, 2, fe.Attempts[0].Retries)
	}
	assert.Equal(t, int32(1), dials.Load(), "15 requests over one connection")
}
