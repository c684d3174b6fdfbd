package inferencetest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLatencySpreadsItsShares(t *testing.T) {
	answer := Latency(func(http.ResponseWriter, *Request) {},
		LatencyStep{Share: 0.9, Delay: time.Millisecond}, LatencyStep{Share: 0.1, Delay: 30 * time.Millisecond})
	slow := 0
	for range 100 {
		start := time.Now()
		answer(httptest.NewRecorder(), &Request{HTTP: httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)})
		if time.Since(start) >= 25*time.Millisecond {
			slow++
		}
	}
	assert.InDelta(t, 10, slow, 1, "10 %% of 100 requests wait the slow delay")
}
