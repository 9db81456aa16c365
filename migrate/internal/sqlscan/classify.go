package sqlscan

// OutsideTransaction reports whether the statement of toks cannot run inside
// a transaction block: CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY,
// REINDEX ... CONCURRENTLY, ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY,
// VACUUM, CREATE/DROP DATABASE, CREATE/DROP TABLESPACE, ALTER SYSTEM.
func OutsideTransaction(toks []Token) bool {
	if len(toks) == 0 {
		return false
	}
	switch {
	case toks[0].Is("VACUUM"):
		return true
	case toks[0].Is("ALTER") && len(toks) > 1 && toks[1].Is("SYSTEM"):
		return true
	case (toks[0].Is("CREATE") || toks[0].Is("DROP")) && len(toks) > 1 && (toks[1].Is("DATABASE") || toks[1].Is("TABLESPACE")):
		return true
	case toks[0].Is("CREATE"):
		i := 1
		if i < len(toks) && toks[i].Is("UNIQUE") {
			i++
		}
		return i+1 < len(toks) && toks[i].Is("INDEX") && toks[i+1].Is("CONCURRENTLY")
	case toks[0].Is("DROP"):
		return len(toks) > 2 && toks[1].Is("INDEX") && toks[2].Is("CONCURRENTLY")
	case toks[0].Is("REINDEX"):
		return hasWord(toks, "CONCURRENTLY")
	case toks[0].Is("ALTER") && len(toks) > 1 && toks[1].Is("TABLE"):
		return hasWord(toks, "DETACH") && toks[len(toks)-1].Is("CONCURRENTLY")
	}
	return false
}

// ConcurrentIndex describes a CREATE [UNIQUE] INDEX CONCURRENTLY statement:
// the index name ("" when the statement names none), whether it says IF NOT
// EXISTS, and ok false for any other statement.
func ConcurrentIndex(toks []Token) (name string, ifNotExists, ok bool) {
	if len(toks) < 3 || !toks[0].Is("CREATE") {
		return "", false, false
	}
	i := 1
	if toks[i].Is("UNIQUE") {
		i++
	}
	if i+1 >= len(toks) || !toks[i].Is("INDEX") || !toks[i+1].Is("CONCURRENTLY") {
		return "", false, false
	}
	i += 2
	if i+2 < len(toks) && toks[i].Is("IF") && toks[i+1].Is("NOT") && toks[i+2].Is("EXISTS") {
		ifNotExists = true
		i += 3
	}
	if i < len(toks) && !toks[i].Is("ON") {
		name = toks[i].Name()
	}
	return name, ifNotExists, true
}

func hasWord(toks []Token, kw string) bool {
	for _, t := range toks {
		if t.Is(kw) {
			return true
		}
	}
	return false
}
