package tenant

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, name := range []string{"a", "team-a", "Team_A.staging", "x!*'()", "...", "a..b", strings.Repeat("t", MaxLength), "0"} {
		if err := Validate(name); err != nil {
			t.Errorf("Validate(%q): %v", name, err)
		}
	}
	for _, tc := range []struct{ name, msg string }{
		{"", "empty"},
		{".", `"." and ".."`},
		{"..", `"." and ".."`},
		{"../../x", `"/" at 2`},
		{"victim|other", `"|" at 6`},
		{"a b", `" " at 1`},
		{"tab\t", `"\t" at 3`},
		{"é", `"\xc3" at 0`},
		{"a,b", `"," at 1`},
		{"a\x00", `"\x00" at 1`},
		{strings.Repeat("t", MaxLength+1), "151 characters long, more than 150"},
	} {
		err := Validate(tc.name)
		var te *Error
		if !errors.As(err, &te) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Validate(%q) = %v, want an *Error with %q", tc.name, err, tc.msg)
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("team-a")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, name string) {
		err := Validate(name)
		if err != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxLength || name == "." || name == ".." || strings.ContainsAny(name, "/|\\ ,:\t\n\x00") {
			t.Fatalf("Validate accepted %q", name)
		}
	})
}
