package router

import (
	"context"

	"github.com/tenantry/tenantry/router/internal/bridge"
)

func init() {
	bridge.Open = func(ctx context.Context, r any, readOnly bool) (*bridge.Scope, error) {
		rt := r.(*Router)
		s, err := rt.scope(ctx, TxOptions{ReadOnly: readOnly})
		if err != nil {
			return nil, err
		}
		lease, err := rt.pools.Lease(ctx, s.key)
		if err != nil {
			return nil, err
		}
		return &bridge.Scope{
			Tenant:  s.t,
			Pool:    lease.Pool(),
			Release: lease.Release,
			SQL:     scopeSQL,
			Args:    [3]string{s.args[0].(string), s.args[1].(string), s.args[2].(string)},
		}, nil
	}
}
