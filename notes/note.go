package notes

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits of a note, the same as the table's CHECK constraints.
const (
	MaxTitleLen = 200   // characters
	MaxBodyLen  = 10000 // bytes
)

// Note is one note of one tenant.
type Note struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// input is the body of POST and PUT.
type input struct {
	Title *string `json:"title"`
	Body  *string `json:"body"`
	// Version, on PUT, must equal the stored version (optimistic
	// concurrency); omit it to overwrite unconditionally.
	Version *int64 `json:"version"`
}

// fieldError is a validation failure of one field.
type fieldError struct{ field, reason string }

func (e *fieldError) Error() string { return fmt.Sprintf("%s %s", e.field, e.reason) }

func (in *input) validate() *fieldError {
	if in.Title == nil {
		return &fieldError{"title", "is required"}
	}
	if err := checkText("title", *in.Title, false); err != nil {
		return err
	}
	if n := utf8.RuneCountInString(*in.Title); n == 0 || n > MaxTitleLen {
		return &fieldError{"title", fmt.Sprintf("must be 1 to %d characters", MaxTitleLen)}
	}
	if in.Body == nil {
		in.Body = new(string)
	}
	if err := checkText("body", *in.Body, true); err != nil {
		return err
	}
	if len(*in.Body) > MaxBodyLen {
		return &fieldError{"body", fmt.Sprintf("must be at most %d bytes", MaxBodyLen)}
	}
	if in.Version != nil && *in.Version < 1 {
		return &fieldError{"version", "must be positive"}
	}
	return nil
}

// checkText refuses invalid UTF-8, NUL (which PostgreSQL text cannot hold)
// and control characters other than newline and tab (in multi-line text).
func checkText(field, s string, multiline bool) *fieldError {
	if !utf8.ValidString(s) {
		return &fieldError{field, "must be valid UTF-8"}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			if multiline && (r == '\n' || r == '\t' || r == '\r') {
				continue
			}
			return &fieldError{field, "must not contain control characters"}
		}
	}
	return nil
}
