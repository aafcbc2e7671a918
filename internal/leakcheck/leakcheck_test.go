package leakcheck

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2
OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r
1RTwjmYSi9R/zGBhISD9yZEQ9Q0yjr2CSuMIRFhbYsBJyx9fOvE/Bc/C
-----END PRIVATE KEY-----
`

func TestScanFindsEveryForm(t *testing.T) {
	s := New()
	secret := s.Add("client_secret", "s3cr3t/value+with=chars")
	s.Add("private key", testPEM)
	s.Add("ignored empty", "")
	s.Add("duplicate", secret)
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	jsonPEM, _ := json.Marshal(map[string]string{"private_key": testPEM})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log")
	if err := os.WriteFile(logPath, []byte("level=debug msg=x body="+url.QueryEscape(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		target Target
		want   string // name found, "" for none
	}{
		{Text("verbatim", "x "+secret+" y"), "client_secret"},
		{Text("base64", base64.StdEncoding.EncodeToString([]byte(secret))), "client_secret"},
		{Text("json pem", string(jsonPEM)), "private key"},
		{Text("one pem line", "key line: 1RTwjmYSi9R/zGBhISD9yZEQ9Q0yjr2CSuMIRFhbYsBJyx9fOvE/Bc/C"), "private key"},
		{Text("pem armour only", "-----BEGIN PRIVATE KEY-----"), ""},
		{Text("hmac'd", "hmac-sha256:0a1b2c"), ""},
		{File("log file", logPath), "client_secret"},
	}
	for _, c := range cases {
		leaks, err := s.Scan(c.target)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.want == "" && len(leaks) != 0:
			t.Errorf("%s: leaks %v, want none", c.target.Where, leaks)
		case c.want != "" && (len(leaks) != 1 || leaks[0].Name != c.want || leaks[0].Where != c.target.Where):
			t.Errorf("%s: leaks %v, want %q", c.target.Where, leaks, c.want)
		}
	}
	if _, err := s.Scan(File("missing", filepath.Join(dir, "nope"))); err == nil {
		t.Error("scanning a missing file: want an error")
	}
}

func TestReportNamesNotValues(t *testing.T) {
	s := New()
	v := s.Add("refresh token", "rt-value-that-must-not-print")
	leaks, _ := s.Scan(Text("server log", v))
	r := Report(leaks)
	if !strings.Contains(r, "refresh token in server log") || strings.Contains(r, v) {
		t.Errorf("report %q: want the name and place, never the value", r)
	}
}
