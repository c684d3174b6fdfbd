package redisstore

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// dialWatch is a go-redis hook that remembers how the client's last dial
// ended. The store times its operations on its own timers, so an operation
// that gives up says only that Redis did not answer in time; go-redis
// itself reports a refused connection only after its dial retries, seconds
// later. The last dial's error names the cause at once.
type dialWatch struct {
	last atomic.Pointer[dialFailure]
}

type dialFailure struct{ err error }

// watch adds the hook to rdb: to a client, or to each node a Cluster or a
// Ring connects to from now on.
func (d *dialWatch) watch(rdb redis.UniversalClient) {
	switch c := rdb.(type) {
	case *redis.Client:
		c.AddHook(d)
	case *redis.ClusterClient:
		c.OnNewNode(func(n *redis.Client) { n.AddHook(d) })
	case *redis.Ring:
		c.OnNewNode(func(n *redis.Client) { n.AddHook(d) })
	}
}

// failure is the error of the last dial, or nil when it connected (or
// none was seen).
func (d *dialWatch) failure() error {
	if f := d.last.Load(); f != nil {
		return f.err
	}
	return nil
}

// DialHook implements redis.Hook: it notes how each dial ended. A dial cut
// short by its caller's deadline says nothing new and is not noted.
func (d *dialWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		switch {
		case err == nil:
			d.last.Store(nil)
		case !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
			d.last.Store(&dialFailure{err: err})
		}
		return conn, err
	}
}

// ProcessHook implements redis.Hook and leaves commands alone.
func (d *dialWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

// ProcessPipelineHook implements redis.Hook and leaves pipelines alone.
func (d *dialWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
