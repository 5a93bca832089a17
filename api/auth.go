package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/pathstats/pathstats"
)

// TokenFile is the name of the generated admin token inside the data dir.
const TokenFile = "admin-token"

// RequireToken lets a request through to next only with
// "Authorization: Bearer <token>". A missing and a wrong token get the same
// 401 UNAUTHORIZED answer; an empty token rejects everything.
func RequireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		gotSum := sha256.Sum256([]byte(got))
		match := subtle.ConstantTimeCompare(gotSum[:], want[:]) == 1
		if !ok || token == "" || !match {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pathstats"`)
			WriteError(w, pathstats.Errorf(pathstats.EUnauthorized, "missing or invalid bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the credentials of a Bearer authorization header; the
// scheme is case-insensitive (RFC 9110 §11.1).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(scheme):])
	return tok, tok != ""
}

// LoadOrCreateToken returns the admin token: given when non-empty, else the
// content of <dataDir>/admin-token, else a new random token written there
// with mode 0600 (created reports that case).
func LoadOrCreateToken(dataDir, given string) (token string, created bool, err error) {
	if given = strings.TrimSpace(given); given != "" {
		return given, false, nil
	}
	path := filepath.Join(dataDir, TokenFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if tok := strings.TrimSpace(string(data)); tok != "" {
			return tok, false, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("read admin token: %w", err)
	}
	tok, err := newToken()
	if err != nil {
		return "", false, err
	}
	if err := writeFileAtomic(dataDir, path, []byte(tok+"\n")); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return tok, true, nil
}

func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeFileAtomic writes data to path (mode 0600) through a temp file in dir
// and a rename, so readers never see a partial file.
func writeFileAtomic(dir, path string, data []byte) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+TokenFile+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable; it is best effort (not every platform can
// fsync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
