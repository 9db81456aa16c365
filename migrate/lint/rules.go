package lint

// Rule names. A step opts out of one with a header line
//
//	-- migrate:allow <rule> <reason>
const (
	// RuleIndexNotConcurrent: CREATE INDEX, DROP INDEX or REINDEX without
	// CONCURRENTLY on a table that already exists blocks writes (SHARE lock)
	// or everything (ACCESS EXCLUSIVE) for the whole build.
	RuleIndexNotConcurrent = "index-not-concurrent"
	// RuleUniqueConstraint: ADD UNIQUE / PRIMARY KEY builds its index under
	// ACCESS EXCLUSIVE.
	RuleUniqueConstraint = "unique-constraint"
	// RuleVolatileDefault: ADD COLUMN with a volatile default (random(),
	// clock_timestamp(), gen_random_uuid(), nextval(), a serial type), an
	// identity or a stored generated column rewrites the table under ACCESS
	// EXCLUSIVE.
	RuleVolatileDefault = "volatile-default"
	// RuleSetNotNull: SET NOT NULL scans the table under ACCESS EXCLUSIVE
	// unless a validated CHECK (col IS NOT NULL) proves it first.
	RuleSetNotNull = "set-not-null"
	// RuleTypeChange: ALTER COLUMN TYPE rewrites the table (and its indexes)
	// under ACCESS EXCLUSIVE for most type changes.
	RuleTypeChange = "type-change"
	// RuleConstraintNotValid: ADD CHECK / FOREIGN KEY without NOT VALID
	// validates every row under a lock that blocks writes.
	RuleConstraintNotValid = "constraint-not-valid"
	// RuleDropColumn: DROP COLUMN breaks code that still reads or writes the
	// column (the old release, during a rollout).
	RuleDropColumn = "drop-column"
	// RuleDropTable: DROP TABLE breaks code that still uses the table.
	RuleDropTable = "drop-table"
	// RuleRename: renaming a table or column breaks the release still
	// running during the rollout.
	RuleRename = "rename"
	// RuleTableRewrite: VACUUM FULL, CLUSTER, SET TABLESPACE, SET
	// [UN]LOGGED rewrite the table under ACCESS EXCLUSIVE.
	RuleTableRewrite = "table-rewrite"
	// RuleUnbatchedUpdate: an UPDATE or DELETE of an existing table in one
	// statement holds its row locks, and bloats, for the whole table.
	RuleUnbatchedUpdate = "unbatched-update"
	// RuleBatchShape: a batch step must be one UPDATE, DELETE or INSERT
	// bounded by a LIMIT, so each run touches a bounded number of rows and
	// the last run touches none.
	RuleBatchShape = "batch-shape"
	// RuleNotIdempotent: a statement run outside a transaction may run
	// again after a crash, so it must be a no-op the second time: CREATE
	// INDEX CONCURRENTLY IF NOT EXISTS with a name, DROP INDEX CONCURRENTLY
	// IF EXISTS.
	RuleNotIdempotent = "not-idempotent"
	// RuleNeedsNoTx: CONCURRENTLY, VACUUM and their kind cannot run inside a
	// transaction; the step must declare "-- migrate:mode no-tx". It cannot
	// be allowed: the step would fail on every target.
	RuleNeedsNoTx = "needs-no-tx"
)

// Rule describes one rule, for documentation and the CLI.
type Rule struct {
	Name string `json:"name"`
	// Summary says what the rule catches and why it matters.
	Summary string `json:"summary"`
	// Allowable is false for rules a step cannot opt out of.
	Allowable bool `json:"allowable"`
}

// Rules lists every rule.
var Rules = []Rule{
	{RuleIndexNotConcurrent, "index built or dropped without CONCURRENTLY on an existing table: blocks writes for the whole build", true},
	{RuleUniqueConstraint, "UNIQUE / PRIMARY KEY constraint added by building its index under ACCESS EXCLUSIVE", true},
	{RuleVolatileDefault, "column added with a volatile default, identity or stored generated expression: rewrites the table", true},
	{RuleSetNotNull, "SET NOT NULL without a validated CHECK (col IS NOT NULL) NOT VALID first: full scan under ACCESS EXCLUSIVE", true},
	{RuleTypeChange, "column type change: rewrites the table and its indexes under ACCESS EXCLUSIVE", true},
	{RuleConstraintNotValid, "CHECK or FOREIGN KEY added without NOT VALID: validates every row while blocking writes", true},
	{RuleDropColumn, "column dropped: breaks code that still uses it", true},
	{RuleDropTable, "table dropped: breaks code that still uses it", true},
	{RuleRename, "table or column renamed: breaks the release still running during the rollout", true},
	{RuleTableRewrite, "VACUUM FULL, CLUSTER, SET TABLESPACE or SET [UN]LOGGED: rewrites the table under ACCESS EXCLUSIVE", true},
	{RuleUnbatchedUpdate, "UPDATE or DELETE of an existing table in one statement: long row locks; use a batch step", true},
	{RuleBatchShape, "batch step that is not one UPDATE/DELETE/INSERT bounded by LIMIT", true},
	{RuleNotIdempotent, "statement run outside a transaction that is not a no-op when run again after a crash", true},
	{RuleNeedsNoTx, "statement that cannot run inside a transaction in a transactional step", false},
}

// Known reports whether name is a rule.
func Known(name string) bool {
	for _, r := range Rules {
		if r.Name == name {
			return true
		}
	}
	return false
}

func allowable(name string) bool {
	for _, r := range Rules {
		if r.Name == name {
			return r.Allowable
		}
	}
	return false
}
