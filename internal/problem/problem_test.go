package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name       string
		p          *Problem
		wantStatus int
		wantCode   string
		wantDetail string
	}{
		{"not found", New(http.StatusNotFound, "tenant_unknown", "no tenant"), 404, "tenant_unknown", "no tenant"},
		{"locked", New(http.StatusLocked, "tenant_suspended", ""), 423, "tenant_suspended", ""},
		{"nil", nil, 500, CodeInternal, ""},
		{"status not an error", New(http.StatusOK, "odd", "x"), 500, CodeInternal, ""},
		{"status out of range", New(999, "odd", "x"), 500, CodeInternal, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			Write(rec, tt.p)
			checkResponse(t, rec, tt.wantStatus, tt.wantCode, tt.wantDetail)
		})
	}
}

func TestWriteEscapes(t *testing.T) {
	t.Parallel()

	// Details are fixed sentences by contract, but the writer must stay safe
	// even if one slips through with markup, control bytes or broken UTF-8.
	p := New(http.StatusBadRequest, "tenant_invalid", "<script>\x00\r\n\xff\"")
	rec := httptest.NewRecorder()
	Write(rec, p)
	body := rec.Body.String()
	for _, bad := range []string{"<script>", "\x00", "\r", "\n", "\xff"} {
		if strings.Contains(body, bad) {
			t.Errorf("body %q contains raw %q", body, bad)
		}
	}
	var got Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()

	secret := errors.New("pq: password authentication failed for user \"root\"")
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{"plain error", secret, 500, CodeInternal},
		{"problem", New(http.StatusConflict, "version_conflict", "changed"), 409, "version_conflict"},
		{"wrapped problem", fmt.Errorf("admin: %w", New(http.StatusGone, "tenant_deleting", "")), 410, "tenant_deleting"},
		{"problem with secret cause", New(http.StatusServiceUnavailable, "catalog_unavailable", "later").WithCause(secret), 503, "catalog_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			WriteError(rec, tt.err)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if strings.Contains(rec.Body.String(), "password") {
				t.Fatalf("internal error text leaked: %s", rec.Body.String())
			}
			var got Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Code != tt.wantCode {
				t.Fatalf("code = %q, want %q", got.Code, tt.wantCode)
			}
		})
	}
}

func TestIsAndCause(t *testing.T) {
	t.Parallel()

	base := New(http.StatusNotFound, "tenant_unknown", "generic")
	cause := errors.New("boom")
	derived := base.WithDetail("specific").WithCause(cause)

	if !errors.Is(derived, base) {
		t.Error("derived problem does not match its base by code")
	}
	if !errors.Is(derived, cause) {
		t.Error("cause is not reachable")
	}
	if errors.Is(derived, New(http.StatusNotFound, "other", "")) {
		t.Error("problems with different codes match")
	}
	if base.Detail != "generic" || base.Unwrap() != nil {
		t.Error("With* mutated the shared base problem")
	}
	if got := derived.Error(); got != "tenant_unknown: specific" {
		t.Errorf("Error() = %q", got)
	}
}

func checkResponse(t *testing.T, rec *httptest.ResponseRecorder, status int, code, detail string) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d", rec.Code, status)
	}
	h := rec.Header()
	if got := h.Get("Content-Type"); got != ContentType {
		t.Errorf("Content-Type = %q", got)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if got["code"] != code {
		t.Errorf("code = %v, want %q", got["code"], code)
	}
	if got["type"] != TypeBase+code {
		t.Errorf("type = %v", got["type"])
	}
	if got["status"] != float64(status) {
		t.Errorf("status member = %v", got["status"])
	}
	if got["title"] != http.StatusText(status) {
		t.Errorf("title = %v", got["title"])
	}
	if d, _ := got["detail"].(string); d != detail {
		t.Errorf("detail = %q, want %q", d, detail)
	}
}
