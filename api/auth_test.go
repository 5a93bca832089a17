package api

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pathstats/pathstats"
)

func TestRequireToken(t *testing.T) {
	const token = "s3cr3t-token"
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := RequireToken(token, next)
	call := func(auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, ok := range []string{"Bearer " + token, "bearer " + token, "BEARER  " + token + " "} {
		if w := call(ok); w.Code != http.StatusTeapot {
			t.Errorf("%q: status %d", ok, w.Code)
		}
	}
	missing := call("")
	wantError(t, missing, http.StatusUnauthorized, pathstats.EUnauthorized)
	for _, bad := range []string{"Bearer wrong", "Bearer " + token + "x", "Basic " + token, token, "Bearer ", "Bearer"} {
		w := call(bad)
		wantError(t, w, http.StatusUnauthorized, pathstats.EUnauthorized)
		if w.Body.String() != missing.Body.String() {
			t.Errorf("%q: body %s differs from the missing-token body %s", bad, w.Body, missing.Body)
		}
		if w.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%q: no WWW-Authenticate", bad)
		}
	}
	// An empty configured token must not let an empty bearer through.
	empty := RequireToken("", next)
	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	r.Header.Set("Authorization", "Bearer ")
	w := httptest.NewRecorder()
	empty.ServeHTTP(w, r)
	wantError(t, w, http.StatusUnauthorized, pathstats.EUnauthorized)
}

func TestLoadOrCreateToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	tok, created, err := LoadOrCreateToken(dir, "")
	if err != nil || !created || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(tok) {
		t.Fatalf("first call: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v", di, err)
	}
	again, created, err := LoadOrCreateToken(dir, "")
	if err != nil || created || again != tok {
		t.Fatalf("second call: %q %v %v, want %q", again, created, err, tok)
	}
	given, created, err := LoadOrCreateToken(dir, "mine")
	if err != nil || created || given != "mine" {
		t.Fatalf("given: %q %v %v", given, created, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left files behind: %v", entries)
	}
}

func TestLoadOrCreateTokenEmptyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, TokenFile)
	if err := os.WriteFile(path, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, created, err := LoadOrCreateToken(dir, "")
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("got %q %v %v", tok, created, err)
	}
	if err := os.WriteFile(path, []byte(" handmade\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, created, err := LoadOrCreateToken(dir, ""); err != nil || created || tok != "handmade" {
		t.Fatalf("got %q %v %v", tok, created, err)
	}
}

func TestLoadOrCreateTokenUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: reading fails with an error
	// other than "does not exist", which must be reported, not papered over.
	if err := os.Mkdir(filepath.Join(dir, TokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(dir, ""); err == nil {
		t.Fatal("no error")
	}
}
