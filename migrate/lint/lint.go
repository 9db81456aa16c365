package lint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tenantry/tenantry/migrate/internal/sqlscan"
)

// Modes of a step, as declared in its header.
const (
	ModeTx    = "tx"
	ModeNoTx  = "no-tx"
	ModeBatch = "batch"
)

// Statement is one statement of a step.
type Statement struct {
	SQL string
	// Line is the 1-based line of the step's file where it starts.
	Line int
}

// Step is one migration as the lint sees it.
type Step struct {
	Version int
	File    string
	// Mode is ModeTx, ModeNoTx or ModeBatch.
	Mode       string
	Statements []Statement
	// Allow maps a rule the step opts out of to the stated reason.
	Allow map[string]string
}

// Finding is one thing the lint flags.
type Finding struct {
	Rule    string `json:"rule"`
	Version int    `json:"version"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	// Statement is the start of the offending statement.
	Statement string `json:"statement"`
	// Message says what is wrong here.
	Message string `json:"message"`
	// Suggestion is the safe (usually expand/contract) form.
	Suggestion string `json:"suggestion"`
	// Allowed is true when the step opts out of the rule; Reason is why.
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

func (f Finding) String() string {
	s := fmt.Sprintf("%s:%d: %s: %s", f.File, f.Line, f.Rule, f.Message)
	if f.Allowed {
		s += " (allowed: " + f.Reason + ")"
	}
	return s
}

// Blocking returns the findings not allowed by their step: the ones that
// must stop a rollout.
func Blocking(findings []Finding) []Finding {
	var out []Finding
	for _, f := range findings {
		if !f.Allowed {
			out = append(out, f)
		}
	}
	return out
}

// Check lints steps, given in version order, as one history: a table
// created by a step is new within that step (anything goes on it there) and
// existing in every later one, as is any table no step creates. Findings are
// ordered by version and line.
func Check(steps []Step) []Finding {
	c := &checker{
		tables:    map[string]int{},
		indexes:   map[string]string{},
		notNull:   map[string]map[string]string{},
		validated: map[string]validation{},
	}
	for i := range steps {
		c.step = &steps[i]
		for _, st := range c.step.Statements {
			c.stmt = st
			c.toks = sqlscan.Tokens(st.SQL)
			c.statement()
		}
		if c.step.Mode == ModeBatch {
			c.batchShape()
		}
	}
	sort.SliceStable(c.out, func(i, j int) bool {
		if c.out[i].Version != c.out[j].Version {
			return c.out[i].Version < c.out[j].Version
		}
		return c.out[i].Line < c.out[j].Line
	})
	return c.out
}

type validation struct {
	version       int
	transactional bool
}

type checker struct {
	step *Step
	stmt Statement
	toks []sqlscan.Token
	out  []Finding

	// tables maps a table (bare name) to the version that created it.
	tables map[string]int
	// indexes maps an index to its table.
	indexes map[string]string
	// notNull maps a table to its CHECK (col IS NOT NULL) NOT VALID
	// constraints: constraint name -> column.
	notNull map[string]map[string]string
	// validated maps "table.column" to the validation of such a check.
	validated map[string]validation
}

// isNew reports whether table was created by the current step.
func (c *checker) isNew(table string) bool {
	v, ok := c.tables[table]
	return ok && v == c.step.Version
}

func (c *checker) flag(rule, msg, suggestion string) {
	f := Finding{
		Rule: rule, Version: c.step.Version, File: c.step.File, Line: c.stmt.Line,
		Statement: excerpt(c.stmt.SQL), Message: msg, Suggestion: suggestion,
	}
	if reason, ok := c.step.Allow[rule]; ok && allowable(rule) {
		f.Allowed, f.Reason = true, reason
	}
	c.out = append(c.out, f)
}

func excerpt(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 120 {
		sql = sql[:117] + "..."
	}
	return sql
}

func (c *checker) statement() {
	t := c.toks
	if len(t) == 0 {
		return
	}
	outside := sqlscan.OutsideTransaction(t)
	if outside && c.step.Mode != ModeNoTx {
		c.flag(RuleNeedsNoTx, "this statement cannot run inside a transaction, and the step is "+c.step.Mode,
			"put it in a step of its own that declares -- migrate:mode no-tx")
	}
	switch {
	case t[0].Is("CREATE"):
		c.create()
	case t[0].Is("ALTER") && len(t) > 1 && t[1].Is("TABLE"):
		c.alterTable()
	case t[0].Is("DROP") && len(t) > 1 && t[1].Is("INDEX"):
		c.dropIndex()
	case t[0].Is("DROP") && len(t) > 1 && t[1].Is("TABLE"):
		c.dropTable()
	case t[0].Is("REINDEX"):
		if !outside {
			c.flag(RuleIndexNotConcurrent, "REINDEX without CONCURRENTLY locks out writes (and reads of the index) while it rebuilds",
				"REINDEX INDEX CONCURRENTLY <name> in a no-tx step")
		}
	case t[0].Is("VACUUM"):
		for _, tok := range t[1:] {
			if tok.Is("FULL") {
				c.flag(RuleTableRewrite, "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
					"plain VACUUM, or pg_repack outside the rollout")
				break
			}
		}
	case t[0].Is("CLUSTER"):
		c.flag(RuleTableRewrite, "CLUSTER rewrites the table under ACCESS EXCLUSIVE", "pg_repack outside the rollout")
	case t[0].Is("UPDATE") || t[0].Is("DELETE"):
		if c.step.Mode != ModeBatch {
			table := c.dmlTable()
			if table != "" && !c.isNew(table) {
				c.flag(RuleUnbatchedUpdate, fmt.Sprintf("%s of existing table %q in one statement holds its row locks for the whole table", t[0].Upper, table),
					"make it a step of its own with -- migrate:mode batch: UPDATE t SET ... WHERE ctid IN (SELECT ctid FROM t WHERE <not done yet> LIMIT 1000)")
			}
		}
	}
}

// cursor helpers over c.toks.

func (c *checker) at(i int, kws ...string) bool {
	for j, kw := range kws {
		if i+j >= len(c.toks) || !c.toks[i+j].Is(kw) {
			return false
		}
	}
	return true
}

// qualifiedName reads a possibly schema-qualified name at i and returns
// its last part and the index after it.
func (c *checker) qualifiedName(i int) (string, int) {
	name := ""
	for i < len(c.toks) {
		name = c.toks[i].Name()
		i++
		if i < len(c.toks) && c.toks[i].Kind == sqlscan.Punct && c.toks[i].Text == "." {
			i++
			continue
		}
		break
	}
	return name, i
}

func (c *checker) dmlTable() string {
	i := 1
	if c.toks[0].Is("DELETE") && c.at(i, "FROM") {
		i++
	}
	if c.at(i, "ONLY") {
		i++
	}
	name, _ := c.qualifiedName(i)
	return name
}

func (c *checker) create() {
	i := 1
	if c.at(i, "OR", "REPLACE") {
		i += 2
	}
	for c.at(i, "TEMP") || c.at(i, "TEMPORARY") || c.at(i, "UNLOGGED") || c.at(i, "GLOBAL") || c.at(i, "LOCAL") {
		i++
	}
	switch {
	case c.at(i, "TABLE"):
		i++
		if c.at(i, "IF", "NOT", "EXISTS") {
			i += 3
		}
		name, _ := c.qualifiedName(i)
		if _, seen := c.tables[name]; !seen && name != "" {
			c.tables[name] = c.step.Version
		}
	case c.at(i, "UNIQUE", "INDEX") || c.at(i, "INDEX"):
		c.createIndex(i)
	}
}

func (c *checker) createIndex(i int) {
	if c.at(i, "UNIQUE") {
		i++
	}
	i++ // INDEX
	concurrent := c.at(i, "CONCURRENTLY")
	if concurrent {
		i++
	}
	ifNotExists := c.at(i, "IF", "NOT", "EXISTS")
	if ifNotExists {
		i += 3
	}
	index := ""
	if !c.at(i, "ON") && i < len(c.toks) {
		index = c.toks[i].Name()
		i++
	}
	for i < len(c.toks) && !c.toks[i].Is("ON") {
		i++
	}
	i++
	if c.at(i, "ONLY") {
		i++
	}
	table, _ := c.qualifiedName(i)
	if index != "" {
		c.indexes[index] = table
	}
	switch {
	case !concurrent && !c.isNew(table):
		c.flag(RuleIndexNotConcurrent, fmt.Sprintf("CREATE INDEX on existing table %q blocks its writes for the whole build", table),
			"CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ... in a step of its own with -- migrate:mode no-tx")
	case concurrent && (index == "" || !ifNotExists):
		c.flag(RuleNotIdempotent, "CREATE INDEX CONCURRENTLY without a name and IF NOT EXISTS builds a second index when run again after a crash",
			"CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> ON ... (an INVALID index left by a failed build is dropped and rebuilt automatically)")
	}
}

func (c *checker) dropIndex() {
	i := 2
	concurrent := c.at(i, "CONCURRENTLY")
	if concurrent {
		i++
	}
	ifExists := c.at(i, "IF", "EXISTS")
	if ifExists {
		i += 2
	}
	index, _ := c.qualifiedName(i)
	if concurrent && !ifExists {
		c.flag(RuleNotIdempotent, "DROP INDEX CONCURRENTLY without IF EXISTS fails when run again after a crash",
			"DROP INDEX CONCURRENTLY IF EXISTS <name>")
	}
	if !concurrent && !c.isNew(c.indexes[index]) {
		c.flag(RuleIndexNotConcurrent, fmt.Sprintf("DROP INDEX %q takes ACCESS EXCLUSIVE on its table", index),
			"DROP INDEX CONCURRENTLY IF EXISTS <name> in a step of its own with -- migrate:mode no-tx")
	}
}

func (c *checker) dropTable() {
	i := 2
	if c.at(i, "IF", "EXISTS") {
		i += 2
	}
	for i < len(c.toks) {
		name, next := c.qualifiedName(i)
		if name != "" && !c.isNew(name) {
			c.flag(RuleDropTable, fmt.Sprintf("dropping table %q breaks any running code that still uses it", name),
				"contract in a later release: stop using the table in release N, drop it in release N+1, and allow this rule with that reason")
		}
		delete(c.tables, name)
		i = next
		if i < len(c.toks) && c.toks[i].Text == "," {
			i++
			continue
		}
		break
	}
}

func (c *checker) alterTable() {
	i := 2
	if c.at(i, "IF", "EXISTS") {
		i += 2
	}
	if c.at(i, "ONLY") {
		i++
	}
	table, i := c.qualifiedName(i)
	if i < len(c.toks) && c.toks[i].Text == "*" {
		i++
	}
	newTable := c.isNew(table)
	for _, action := range splitTopLevel(c.toks[i:]) {
		c.alterAction(table, newTable, action)
	}
}

// splitTopLevel splits toks at commas outside parentheses.
func splitTopLevel(toks []sqlscan.Token) [][]sqlscan.Token {
	var out [][]sqlscan.Token
	depth, start := 0, 0
	for i, t := range toks {
		if t.Kind != sqlscan.Punct {
			continue
		}
		switch t.Text {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, toks[start:i])
				start = i + 1
			}
		}
	}
	if start < len(toks) {
		out = append(out, toks[start:])
	}
	return out
}

var volatileFuncs = map[string]bool{
	"random": true, "clock_timestamp": true, "timeofday": true, "gen_random_uuid": true,
	"uuid_generate_v1": true, "uuid_generate_v1mc": true, "uuid_generate_v4": true,
	"nextval": true, "setseed": true, "txid_current": true, "pg_current_xact_id": true,
	"random_normal": true, "uuidv4": true, "uuidv7": true,
}

var serialTypes = map[string]bool{
	"SERIAL": true, "BIGSERIAL": true, "SMALLSERIAL": true, "SERIAL2": true, "SERIAL4": true, "SERIAL8": true,
}

func (c *checker) alterAction(table string, newTable bool, a []sqlscan.Token) {
	if len(a) == 0 {
		return
	}
	is := func(i int, kws ...string) bool {
		for j, kw := range kws {
			if i+j >= len(a) || !a[i+j].Is(kw) {
				return false
			}
		}
		return true
	}
	switch {
	case is(0, "ADD"):
		i := 1
		if is(i, "CONSTRAINT") {
			if len(a) > i+2 {
				c.addConstraint(table, newTable, a[i+2:], a[i+1].Name())
			}
			return
		}
		if is(i, "CHECK") || is(i, "UNIQUE") || is(i, "PRIMARY") || is(i, "FOREIGN") || is(i, "EXCLUDE") {
			c.addConstraint(table, newTable, a[i:], "")
			return
		}
		if newTable {
			return
		}
		if is(i, "COLUMN") {
			i++
		}
		if is(i, "IF", "NOT", "EXISTS") {
			i += 3
		}
		c.addColumn(table, a[i:])
	case is(0, "ALTER"):
		i := 1
		if is(i, "COLUMN") {
			i++
		}
		if i >= len(a) {
			return
		}
		col := a[i].Name()
		i++
		switch {
		case is(i, "TYPE") || is(i, "SET", "DATA", "TYPE"):
			if !newTable {
				c.flag(RuleTypeChange, fmt.Sprintf("changing the type of %s.%s rewrites the table and its indexes under ACCESS EXCLUSIVE", table, col),
					"expand/contract: add a column of the new type, dual-write it (trigger or application), backfill it in a batch step, switch reads, drop the old column in a later release; allow this rule only for a binary-coercible change such as varchar(n) to text")
			}
		case is(i, "SET", "NOT", "NULL"):
			if newTable {
				return
			}
			v, ok := c.validated[table+"."+col]
			if ok && (v.version < c.step.Version || v.version == c.step.Version && !v.transactional) {
				return
			}
			c.flag(RuleSetNotNull, fmt.Sprintf("SET NOT NULL on %s.%s scans the whole table under ACCESS EXCLUSIVE", table, col),
				"step N: ADD CONSTRAINT c CHECK ("+col+" IS NOT NULL) NOT VALID; step N+1: VALIDATE CONSTRAINT c; then SET NOT NULL (no scan once the check is validated) and DROP CONSTRAINT c")
		}
	case is(0, "VALIDATE", "CONSTRAINT") && len(a) > 2:
		name := a[2].Name()
		if col, ok := c.notNull[table][name]; ok {
			c.validated[table+"."+col] = validation{version: c.step.Version, transactional: c.step.Mode != ModeNoTx}
		}
	case is(0, "DROP", "CONSTRAINT"):
	case is(0, "DROP"):
		if newTable {
			return
		}
		i := 1
		if is(i, "COLUMN") {
			i++
		}
		if is(i, "IF", "EXISTS") {
			i += 2
		}
		col := ""
		if i < len(a) {
			col = a[i].Name()
		}
		c.flag(RuleDropColumn, fmt.Sprintf("dropping %s.%s breaks any running code that still reads or writes it", table, col),
			"contract in a later release: stop using the column in release N (ignore it in SELECTs, stop writing it), drop it in release N+1, and allow this rule with that reason")
	case is(0, "RENAME"):
		if newTable || is(1, "CONSTRAINT") {
			return
		}
		c.flag(RuleRename, fmt.Sprintf("renaming in %s breaks the release still running during the rollout", table),
			"add the new column or table, dual-write, backfill, switch reads, drop the old one in a later release (or keep the old name as a view)")
	case is(0, "SET", "SCHEMA"):
		if !newTable {
			c.flag(RuleRename, fmt.Sprintf("moving %s to another schema hides it from running code", table),
				"create it in the new schema alongside, dual-write, switch, drop the old one in a later release")
		}
	case is(0, "SET", "TABLESPACE"), is(0, "SET", "LOGGED"), is(0, "SET", "UNLOGGED"):
		if !newTable {
			c.flag(RuleTableRewrite, fmt.Sprintf("%s %s rewrites %s under ACCESS EXCLUSIVE", a[0].Upper, a[1].Upper, table),
				"do it outside the rollout (pg_repack), or copy into a new table with expand/contract")
		}
	}
}

func (c *checker) addColumn(table string, col []sqlscan.Token) {
	if len(col) < 2 {
		return
	}
	name := col[0].Name()
	hasDefault, notNull := false, false
	if serialTypes[col[1].Upper] {
		c.flag(RuleVolatileDefault, fmt.Sprintf("adding %s.%s of a serial type fills it from a sequence: rewrites the table under ACCESS EXCLUSIVE", table, name),
			"add a nullable bigint column, backfill it in a batch step, then set the default to nextval(...)")
		return
	}
	for i := 1; i < len(col); i++ {
		t := col[i]
		switch {
		case t.Is("DEFAULT"):
			hasDefault = true
			if f := volatileCall(col[i+1:]); f != "" {
				c.flag(RuleVolatileDefault, fmt.Sprintf("adding %s.%s with the volatile default %s() rewrites the table under ACCESS EXCLUSIVE", table, name, f),
					"add the column nullable without a default; backfill it in a batch step; then ALTER COLUMN "+name+" SET DEFAULT "+f+"() (a default set later does not rewrite)")
				return
			}
		case t.Is("GENERATED"):
			rest := col[i:]
			for _, r := range rest {
				if r.Is("IDENTITY") {
					c.flag(RuleVolatileDefault, fmt.Sprintf("adding identity column %s.%s fills every row: rewrites the table under ACCESS EXCLUSIVE", table, name),
						"add a nullable bigint column, backfill it in a batch step, then make it an identity (ALTER COLUMN ... ADD GENERATED ... AS IDENTITY)")
					return
				}
				if r.Is("STORED") {
					c.flag(RuleVolatileDefault, fmt.Sprintf("adding stored generated column %s.%s computes every row: rewrites the table under ACCESS EXCLUSIVE", table, name),
						"add a plain nullable column kept by a trigger, backfill it in a batch step")
					return
				}
			}
		case t.Is("NOT") && i+1 < len(col) && col[i+1].Is("NULL"):
			notNull = true
		}
	}
	if notNull && !hasDefault {
		c.flag(RuleSetNotNull, fmt.Sprintf("adding %s.%s NOT NULL without a default fails on any target whose table has rows", table, name),
			"add it with a constant default (no rewrite), or nullable, then backfill and SET NOT NULL through a validated CHECK")
	}
}

// volatileCall returns the first volatile function called in toks, "" if
// none.
func volatileCall(toks []sqlscan.Token) string {
	for i, t := range toks {
		if t.Kind == sqlscan.Word && i+1 < len(toks) && toks[i+1].Text == "(" && volatileFuncs[strings.ToLower(t.Text)] {
			return strings.ToLower(t.Text)
		}
	}
	return ""
}

// addConstraint handles ADD [CONSTRAINT name] <constraint>; toks start at
// the constraint kind.
func (c *checker) addConstraint(table string, newTable bool, toks []sqlscan.Token, name string) {
	if len(toks) == 0 {
		return
	}
	notValid := false
	usingIndex := false
	for i := range toks {
		if toks[i].Is("NOT") && i+1 < len(toks) && toks[i+1].Is("VALID") {
			notValid = true
		}
		if toks[i].Is("USING") && i+1 < len(toks) && toks[i+1].Is("INDEX") {
			usingIndex = true
		}
	}
	kind := toks[0].Upper
	if kind == "CHECK" && notValid && name != "" {
		// CHECK ( col IS NOT NULL ) NOT VALID
		if len(toks) >= 7 && toks[1].Text == "(" && toks[3].Is("IS") && toks[4].Is("NOT") && toks[5].Is("NULL") && toks[6].Text == ")" {
			if c.notNull[table] == nil {
				c.notNull[table] = map[string]string{}
			}
			c.notNull[table][name] = toks[2].Name()
		}
	}
	if newTable {
		return
	}
	switch kind {
	case "CHECK", "FOREIGN":
		if !notValid {
			c.flag(RuleConstraintNotValid, fmt.Sprintf("adding a %s constraint to %s validates every row while blocking writes", strings.ToLower(kind), table),
				"ADD CONSTRAINT ... NOT VALID in one step, VALIDATE CONSTRAINT ... in a later one (it takes only SHARE UPDATE EXCLUSIVE)")
		}
	case "UNIQUE", "PRIMARY", "EXCLUDE":
		if !usingIndex {
			c.flag(RuleUniqueConstraint, fmt.Sprintf("adding a %s constraint to %s builds its index under ACCESS EXCLUSIVE", strings.ToLower(kind), table),
				"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ... in a no-tx step, then ALTER TABLE ... ADD CONSTRAINT c UNIQUE USING INDEX i")
		}
	}
}

// batchShape checks that a batch step is one bounded DML statement.
func (c *checker) batchShape() {
	st := c.step.Statements
	if len(st) != 1 {
		c.stmt = Statement{Line: 1}
		if len(st) > 0 {
			c.stmt = st[1]
		}
		c.flag(RuleBatchShape, fmt.Sprintf("a batch step must hold exactly one statement, this one holds %d", len(st)),
			"one UPDATE ... WHERE ctid IN (SELECT ctid FROM t WHERE <not done yet> LIMIT 1000) per batch step")
		return
	}
	c.stmt = st[0]
	toks := sqlscan.Tokens(st[0].SQL)
	if len(toks) == 0 || !(toks[0].Is("UPDATE") || toks[0].Is("DELETE") || toks[0].Is("INSERT") || toks[0].Is("WITH")) {
		c.flag(RuleBatchShape, "a batch step must be an UPDATE, DELETE or INSERT",
			"one UPDATE ... WHERE ctid IN (SELECT ctid FROM t WHERE <not done yet> LIMIT 1000)")
		return
	}
	for _, t := range toks {
		if t.Is("LIMIT") {
			return
		}
	}
	c.flag(RuleBatchShape, "a batch statement without LIMIT does the whole table in one batch",
		"bound each batch: ... WHERE ctid IN (SELECT ctid FROM t WHERE <not done yet> LIMIT 1000)")
}
