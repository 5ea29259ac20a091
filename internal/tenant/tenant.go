// Package tenant says which tenant names sluice accepts. A tenant name
// travels in X-Scope-OrgID, in the sluice-tenant header of every bus record,
// in tokens files, and later in paths and label values of the sinks, so one
// set of rules keeps it safe in all of them: the rules of Grafana Mimir and
// Loki (at most 150 characters of letters, digits and !-_.*'(), and neither
// "." nor ".."). Characters such as '/', '|' and spaces, which would let a
// name climb out of a directory or pose as two tenants, are refused.
//
// The package imports nothing of sluice's, so the ingester, the workers and
// the sinks can all use it.
package tenant

import "fmt"

// MaxLength is the longest tenant name, in bytes (every valid character is
// one byte).
const MaxLength = 150

// Allowed describes the valid characters, for error messages.
const Allowed = "letters, digits and !-_.*'()"

// Error is an invalid tenant name.
type Error struct {
	Name string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("invalid tenant %q: %s", e.Name, e.Msg) }

// Validate returns an *Error when name is not a valid tenant name.
func Validate(name string) error {
	switch {
	case name == "":
		return &Error{Name: name, Msg: "empty"}
	case len(name) > MaxLength:
		return &Error{Name: name[:20] + "...", Msg: fmt.Sprintf("%d characters long, more than %d", len(name), MaxLength)}
	case name == "." || name == "..":
		return &Error{Name: name, Msg: `"." and ".." are not tenant names`}
	}
	for i := 0; i < len(name); i++ {
		if !valid[name[i]] {
			return &Error{Name: name, Msg: fmt.Sprintf("character %q at %d is not allowed (valid: %s)", name[i:i+1], i, Allowed)}
		}
	}
	return nil
}

// valid is the character set: a table, as Validate runs on every request.
var valid = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!-_.*'()" {
		t[c] = true
	}
	return t
}()
