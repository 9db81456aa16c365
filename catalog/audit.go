package catalog

import (
	"context"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// actionRe is the form of an audit action: lower-case words joined by dots,
// such as "tenant.create" or "breakglass.begin".
var actionRe = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)

// Limits of AppendAudit's free-text fields.
const (
	maxAuditActor  = 200
	maxAuditAction = 64
	maxAuditTarget = 500
	maxAuditReason = 2000
)

// AppendAudit appends one entry to the append-only audit log, in a
// transaction of its own, and returns once it is committed: for actions
// outside the catalog's own writes (break-glass access, say) that must be
// on record before they happen. actor.Reason is recorded as the entry's
// reason; detail, if not nil, is stored as JSON in the entry's after-image.
//
// action is lower-case words joined by dots ("breakglass.begin"); tenantID
// is "" or a tenant's UUID (not checked against the tenant table: the log
// outlives the tenants it describes).
func (s *Store) AppendAudit(ctx context.Context, actor Actor, action, tenantID, target string, detail any) error {
	if err := actor.validate(); err != nil {
		return err
	}
	switch {
	case len(actor.Name) > maxAuditActor:
		return &ValidationError{Field: "actor", Reason: "too long"}
	case len(actor.Reason) > maxAuditReason:
		return &ValidationError{Field: "reason", Reason: "too long"}
	case len(action) > maxAuditAction || !actionRe.MatchString(action):
		return &ValidationError{Field: "action", Reason: "must be lower-case words joined by dots"}
	case tenantID != "" && !isUUID(tenantID):
		return &ValidationError{Field: "tenant_id", Reason: "must be a UUID"}
	case len(target) > maxAuditTarget:
		return &ValidationError{Field: "target", Reason: "too long"}
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		return s.audit(ctx, tx, actor, action, tenantID, target, nil, detail)
	})
}
