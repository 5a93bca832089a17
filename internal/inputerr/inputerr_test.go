package inputerr

import (
	"errors"
	"strings"
	"testing"

	"github.com/pathstats/pathstats"
)

type testGeo struct {
	Enabled bool     `json:"enabled"`
	Allow   []string `json:"allow"`
}

type testBody struct {
	Path  string `json:"path"`
	Cache *struct {
		TTL int `json:"ttlSeconds"`
	} `json:"cache"`
	Geo   *testGeo  `json:"geo"`
	Steps []float64 `json:"steps"`
	N     *uint32   `json:"n"`
	Items []struct {
		Name string `json:"name"`
	} `json:"items"`
	Custom custom `json:"custom"`
}

type custom struct{}

func (*custom) UnmarshalJSON([]byte) error {
	return pathstats.Errorf(pathstats.EInvalidBody, "custom: must be right")
}

func TestDecodeJSONMessages(t *testing.T) {
	long := strings.Repeat("k", 200)
	for _, tc := range []struct{ body, want string }{
		{`{"cache":"x"}`, "cache: must be an object"},
		{`{"cache":{"ttlSeconds":1.5}}`, "cache.ttlSeconds: must be an integer"},
		{`{"CACHE":{"TTLSeconds":"1"}}`, "cache.ttlSeconds: must be an integer"},
		{`{"geo":{"allow":[1]}}`, "geo.allow: must be an array of strings"},
		{`{"geo":{"enabled":"yes"}}`, "geo.enabled: must be true or false"},
		{`{"steps":[1,"a"]}`, "steps: must be an array of numbers"},
		{`{"steps":{}}`, "steps: must be an array of numbers"},
		{`{"n":-1}`, "n: must be a non-negative integer"},
		{`{"items":[{"name":5}]}`, "items.name: must be a string"},
		{`{"path":1}`, "path: must be a string"},
		{`[1]`, "body must be an object"},
		{`"x"`, "body must be an object"},
		{`{"zz":1}`, `unknown field "zz"`},
		{`{"` + long + `":1}`, `unknown field "` + long[:MaxEcho] + `…"`},
		{`{"a\u0000b":1}`, `unknown field "a\x00b"`},
		{`{"custom":1}`, "custom: must be right"},
		{``, "body is empty"},
		{`   `, "body is empty"},
		{`{"path"`, "body is not valid JSON: unexpected end of input"},
		{`{"path":"a"} x`, "unexpected data after the JSON value at byte 13"},
		{`{} {}`, "unexpected data after the JSON value at byte 3"},
		{`{}]`, "unexpected data after the JSON value at byte 2"},
		{`{"path":x}`, "body is not valid JSON at byte 9: invalid character 'x' looking for beginning of value"},
	} {
		var v testBody
		err := DecodeJSON([]byte(tc.body), &v)
		var pe *pathstats.Error
		if !errors.As(err, &pe) || pe.Code != pathstats.EInvalidBody {
			t.Errorf("%.40q: %v, want INVALID_BODY", tc.body, err)
			continue
		}
		if pe.Message != tc.want {
			t.Errorf("%.40q: message %q, want %q", tc.body, pe.Message, tc.want)
		}
	}
	var v testBody
	if err := DecodeJSON([]byte(" {\"path\":\"/a\"}\n\t "), &v); err != nil || v.Path != "/a" {
		t.Fatalf("valid body: %v %+v", err, v)
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"abc", `"abc"`},
		{"a\x00b\x7f\n", `"a\x00b\x7f\n"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 65), `"` + strings.Repeat("x", 64) + `…"`},
		{strings.Repeat("x", 63) + "é", `"` + strings.Repeat("x", 63) + `…"`},
		{"\xff", `"\xff"`},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%.20q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzDecodeJSON: any body gives nil or an INVALID_BODY error whose message
// names no Go type and echoes at most MaxEcho bytes of input.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"cache":"x"}`, `{"geo":{"allow":[1]}}`, `{"zz":1}`, `{} {}`, `[`, `{"steps":[1,"a"]}`, `{"items":[{"name":{}}]}`, `null`, `{"n":1e99}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v testBody
		err := DecodeJSON(data, &v)
		if err == nil {
			return
		}
		var pe *pathstats.Error
		if !errors.As(err, &pe) || pe.Code != pathstats.EInvalidBody {
			t.Fatalf("%v: not INVALID_BODY", err)
		}
		for _, leak := range []string{"Go struct", "Go value", "inputerr.", "testBody", "json:"} {
			if strings.Contains(pe.Message, leak) {
				t.Fatalf("message %q leaks %q", pe.Message, leak)
			}
		}
		if len(pe.Message) > 4*MaxEcho+120 {
			t.Fatalf("message of %d bytes: %q", len(pe.Message), pe.Message)
		}
	})
}
