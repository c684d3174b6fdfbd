package inference

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// huggingface_hub keeps a login in two files beside each other: the active
// token alone in the token file (tokenFilePath), and every token it knows
// in "stored_tokens", an INI file that Python's configparser reads and
// writes (interpolation off): one section per token name with hf_token
// and, for a browser login, refresh_token and expires_at (unix seconds).
// This file reads and writes both exactly as huggingface_hub does, so that
// `hf` and this library share one login.

// Keys of a stored_tokens section.
const (
	storedKeyToken   = "hf_token"
	storedKeyRefresh = "refresh_token"
	storedKeyExpires = "expires_at"
)

// tokenFiles are huggingface_hub's files: the active token and, in the
// same directory, stored_tokens and its lock.
type tokenFiles struct {
	tokenPath string
}

// userTokenFiles are the files at huggingface_hub's paths (HF_TOKEN_PATH,
// HF_HOME, XDG_CACHE_HOME, home); ok is false when no path can be found.
func userTokenFiles() (tokenFiles, bool) {
	p := tokenFilePath()
	return tokenFiles{tokenPath: p}, p != ""
}

func (f tokenFiles) storedPath() string {
	return filepath.Join(filepath.Dir(f.tokenPath), "stored_tokens")
}

// lockPath is the lock huggingface_hub holds while it refreshes.
func (f tokenFiles) lockPath() string { return f.storedPath() + ".lock" }

// readToken is the active token, trimmed, or "" when there is none.
func (f tokenFiles) readToken() (string, error) {
	data, err := os.ReadFile(f.tokenPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(data)), err
}

// readStored parses stored_tokens; a missing file is an empty one. A file
// configparser would refuse is an error: huggingface_hub then sees no
// stored token, and neither is it refreshed nor rewritten here.
func (f tokenFiles) readStored() (*storedTokens, error) {
	data, err := os.ReadFile(f.storedPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &storedTokens{}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := parseStoredTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.storedPath(), err)
	}
	return st, nil
}

// writeStored replaces stored_tokens with st, as a secret.
func (f tokenFiles) writeStored(st *storedTokens) error {
	return writeSecret(f.storedPath(), st.encode())
}

// writeToken makes token the active one, as a secret; huggingface_hub
// writes it alone, without a newline.
func (f tokenFiles) writeToken(token string) error {
	return writeSecret(f.tokenPath, []byte(token))
}

// writeSecret replaces the file at path with data readable by its owner
// alone (0600, its directory 0700, as huggingface_hub makes them). The
// data goes to a temporary file in the same directory that is then
// renamed over path, so that a reader (this library, or `hf` in another
// process) sees the old file or the new one, never half of one, and it
// keeps the old file's owner where this process may give it (root). A
// symbolic link at path is followed: the file it points to is replaced.
func writeSecret(path string, data []byte) error {
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// huggingface_hub restricts the directory too; on systems without
	// POSIX modes this does nothing harmful.
	_ = os.Chmod(dir, 0o700)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer func() {
		if name != "" {
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		_ = tmp.Close()
		return err
	}
	if old, err := os.Stat(path); err == nil {
		keepOwner(tmp, old)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	name = ""
	return nil
}

// storedTokens is the content of stored_tokens: sections in the file's
// order, each with its keys in order.
type storedTokens struct {
	sections []storedSection
}

// storedSection is one named token and its fields.
type storedSection struct {
	name   string
	fields []storedField
}

type storedField struct{ key, value string }

// get is the value of key, as configparser gives it.
func (s *storedSection) get(key string) (string, bool) {
	for _, f := range s.fields {
		if f.key == key {
			return f.value, true
		}
	}
	return "", false
}

// login reads the section as a login: its token, and the refresh token
// and expiry of a browser login (zero when absent or, for expires_at,
// not an integer, which huggingface_hub treats as absent).
func (s *storedSection) login() loginRecord {
	rec := loginRecord{name: s.name}
	rec.access, _ = s.get(storedKeyToken)
	rec.refresh, _ = s.get(storedKeyRefresh)
	if v, ok := s.get(storedKeyExpires); ok {
		// Python's int() takes surrounding white space and a sign.
		if n, err := strconv.ParseInt(pyStrip(v), 10, 64); err == nil {
			rec.expires = time.Unix(n, 0)
		}
	}
	return rec
}

// section is the section named name, or nil.
func (st *storedTokens) section(name string) *storedSection {
	for i := range st.sections {
		if st.sections[i].name == name {
			return &st.sections[i]
		}
	}
	return nil
}

// withToken is the first section whose hf_token is token, or nil; the
// file's order is huggingface_hub's.
func (st *storedTokens) withToken(token string) *storedSection {
	for i := range st.sections {
		if v, ok := st.sections[i].get(storedKeyToken); ok && v == token {
			return &st.sections[i]
		}
	}
	return nil
}

// putLogin replaces (or adds) the section of rec.name with rec's fields
// alone, in huggingface_hub's order: logging in again under a name drops
// the metadata of the previous login, as huggingface_hub does.
func (st *storedTokens) putLogin(rec loginRecord) {
	fields := []storedField{{storedKeyToken, rec.access}}
	if rec.refresh != "" {
		fields = append(fields, storedField{storedKeyRefresh, rec.refresh})
	}
	if !rec.expires.IsZero() {
		fields = append(fields, storedField{storedKeyExpires, strconv.FormatInt(rec.expires.Unix(), 10)})
	}
	if s := st.section(rec.name); s != nil {
		s.fields = fields
		return
	}
	st.sections = append(st.sections, storedSection{name: rec.name, fields: fields})
}

// encode writes the file as huggingface_hub does (configparser.write of
// the sections sorted by name): "[name]", then "key = value" lines, then
// an empty line; a value's inner line breaks continue on lines indented
// with a tab.
func (st *storedTokens) encode() []byte {
	sorted := slices.Clone(st.sections)
	slices.SortStableFunc(sorted, func(a, b storedSection) int { return strings.Compare(a.name, b.name) })
	var b bytes.Buffer
	for _, s := range sorted {
		b.WriteString("[" + s.name + "]\n")
		for _, f := range s.fields {
			b.WriteString(f.key + " = " + strings.ReplaceAll(f.value, "\n", "\n\t") + "\n")
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// configparser's name of the section whose keys every section inherits.
const iniDefaultSection = "DEFAULT"

// parseStoredTokens reads an INI file as Python's configparser does with
// its defaults (strict, interpolation off, "=" and ":" as delimiters, "#"
// and ";" starting whole-line comments, keys lowercased, indented lines
// continuing a value, DEFAULT's keys inherited by every section), read
// as Python reads a text file (a lone "\r" ends a line) with Python's
// white space, and fails where configparser would: a key before any
// section, a line that is neither, a section or key given twice. Keys are
// lowered by Go's simple mapping, so a key with "İ" or a final "Σ" lowers
// otherwise than in Python; no key huggingface_hub reads has one.
func parseStoredTokens(data []byte) (*storedTokens, error) {
	st := &storedTokens{}
	defaults := storedSection{name: iniDefaultSection}
	var cur *storedSection
	// Values are kept as lists of lines until the end, as configparser
	// does, so that trailing empty lines can be dropped from a value.
	type pending struct {
		sec   *storedSection
		index int
		lines []string
	}
	var open *pending
	var values []*pending
	seen := map[string]bool{}
	indent := -1
	// Python reads the file with universal newlines: "\r\n" and a lone
	// "\r" end a line too.
	text := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
	for n, line := range strings.Split(text, "\n") {
		lineNo := n + 1
		trimmed := pyStrip(line)
		comment := strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")
		if comment || trimmed == "" {
			// configparser keeps an empty line inside a value (dropped
			// if nothing follows), but not a comment line.
			if !comment && open != nil {
				open.lines = append(open.lines, "")
			}
			continue
		}
		// configparser counts the indent in characters.
		lineIndent := utf8.RuneCountInString(line) - utf8.RuneCountInString(strings.TrimLeftFunc(line, pyIsSpace))
		if open != nil && lineIndent > indent {
			open.lines = append(open.lines, trimmed)
			continue
		}
		indent = lineIndent
		if strings.HasPrefix(trimmed, "[") {
			if end := strings.LastIndex(trimmed, "]"); end > 1 {
				name := trimmed[1:end]
				open = nil
				if name == iniDefaultSection {
					cur = &defaults
					continue
				}
				if seen["["+name] {
					return nil, fmt.Errorf("line %d: section %q is given twice", lineNo, name)
				}
				seen["["+name] = true
				st.sections = append(st.sections, storedSection{name: name})
				cur = &st.sections[len(st.sections)-1]
				continue
			}
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: a key comes before any section header", lineNo)
		}
		at := strings.IndexAny(trimmed, "=:")
		key := strings.ToLower(pyStrip(trimmed[:max(at, 0)]))
		if at < 0 || key == "" {
			return nil, fmt.Errorf("line %d: neither a section header nor a key = value line", lineNo)
		}
		if seen[cur.name+"\x00"+key] {
			return nil, fmt.Errorf("line %d: key %q is given twice in section %q", lineNo, key, cur.name)
		}
		seen[cur.name+"\x00"+key] = true
		cur.fields = append(cur.fields, storedField{key: key})
		open = &pending{sec: cur, index: len(cur.fields) - 1, lines: []string{pyStrip(trimmed[at+1:])}}
		values = append(values, open)
	}
	// The section slice may have grown after a pending value pointed into
	// it: resolve each by section name and index.
	for _, p := range values {
		sec := p.sec
		if sec != &defaults {
			sec = st.section(p.sec.name)
		}
		sec.fields[p.index].value = strings.TrimRightFunc(strings.Join(p.lines, "\n"), pyIsSpace)
	}
	if len(defaults.fields) > 0 {
		// As configparser's items(section): DEFAULT's keys first (with
		// the section's value when it has its own), then the section's
		// others.
		for i := range st.sections {
			s := &st.sections[i]
			merged := make([]storedField, 0, len(defaults.fields)+len(s.fields))
			for _, d := range defaults.fields {
				if v, ok := s.get(d.key); ok {
					d.value = v
				}
				merged = append(merged, d)
			}
			for _, f := range s.fields {
				if _, ok := defaults.get(f.key); !ok {
					merged = append(merged, f)
				}
			}
			s.fields = merged
		}
	}
	return st, nil
}

// pyIsSpace is Python's str.isspace for one character, which configparser
// strips lines, keys and values with: Go's white space and the four
// information separators U+001C to U+001F.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// pyStrip is Python's str.strip().
func pyStrip(s string) string { return strings.TrimFunc(s, pyIsSpace) }
