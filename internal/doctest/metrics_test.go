package doctest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"shoal/internal/agent"
	"shoal/internal/testcluster"

	_ "shoal/modules/all" // every module's metrics, as the binary registers them
)

// repoRoot is the repository, seen from this package's directory (go test
// runs in it).
const repoRoot = "../.."

// absentAtRest lists the documented metric families that cannot be on
// /metrics before any traffic, with the reason: their label values name
// things that exist only once there is traffic or peers (a request's
// status code, a follower's name), so no series can be created in
// advance. Every other documented family must be there.
var absentAtRest = map[string]string{
	// The code label is the status of a served request; method and route
	// are bounded, but the code is known only once the request is served.
	"shoal_http_requests_total": "labelled by the status code of a served request: appears with the first request (a health check)",
	// Pre-creating a histogram for every method and route pattern would
	// add ~20 series per route for routes a node may never serve.
	"shoal_http_request_duration_seconds": "labelled by the method and route of a served request: appears with the first request (a health check)",
	// The follower label is a server's name: the replication leader adds a
	// follower's series when it streams to it; a single node has none.
	"shoal_replication_sent_bytes_total": "labelled by follower: only on the replication leader, once it has followers",
	"shoal_replication_acked_bytes":      "labelled by follower: only on the replication leader, once it has followers",
	"shoal_replication_lag_bytes":        "labelled by follower: only on the replication leader, once it has followers",
	"shoal_replication_lag_seconds":      "labelled by follower: only on the replication leader, once it has followers",
	// A client's forwarder exists only on clients (--role client); the
	// test's node is a server.
	"shoal_forwarded_requests_total":     "registered only on clients (--role client)",
	"shoal_forwarded_requests_in_flight": "registered only on clients (--role client)",
}

// notMetrics are backticked shoal_ names in the docs that are not metric
// names.
var notMetrics = map[string]string{
	"shoal_console": "the console's session cookie (docs/console.md)",
}

// TestDocumentedMetrics_PresentAtRest starts a node with every module,
// scrapes /metrics before any traffic, and fails naming every documented
// metric family the scrape lacks.
func TestDocumentedMetrics_PresentAtRest(t *testing.T) {
	documented, values := documentedMetrics(t, repoRoot)
	for name, why := range absentAtRest {
		if _, ok := documented[name]; !ok {
			t.Errorf("absentAtRest names %s (%s), which no doc mentions: remove it", name, why)
		}
	}

	// --http-rate is off by default, and shoal_http_rate_limited_total
	// exists only with it: turn it on so the family is checked too. The
	// disk alarm (--min-free-disk) is on by default.
	c := testcluster.New(t, 1, testcluster.WithConfig(func(_ int, cfg *agent.Config) {
		cfg.RatePerClient = 10000
	}))
	scrape := scrapeMetrics(t, c.Node(0).URL()+"/metrics")
	families := parseFamilies(scrape)

	for _, m := range missingFamilies(documented, families, absentAtRest) {
		t.Errorf("documented metric %s is not on /metrics of a node at rest (documented at %s)",
			m, strings.Join(documented[m], ", "))
	}
	// Where the docs spell out label values, each must be a series too.
	for _, s := range missingSeries(values, scrape, absentAtRest) {
		t.Errorf("documented series %s is not on /metrics of a node at rest", s)
	}
	for _, name := range sortedKeys(absentAtRest) {
		if families[name] > 0 {
			t.Logf("%s is on /metrics at rest although absentAtRest exempts it (%s)", name, absentAtRest[name])
		}
	}
	// Reported, never failed: families on the node the docs do not name.
	for _, name := range undocumentedFamilies(documented, families) {
		t.Logf("metric %s is on /metrics but no doc mentions it", name)
	}

	// Negative controls: the same checker on a scrape lacking a documented
	// family or series, and on docs naming a family no scrape has, must
	// report exactly that on top of what it reports for the real scrape.
	baseFamilies := missingFamilies(documented, families, absentAtRest)
	baseSeries := missingSeries(values, scrape, absentAtRest)
	with := func(base []string, extra ...string) []string {
		out := append(slices.Clone(base), extra...)
		sort.Strings(out)
		return out
	}
	t.Run("negative control", func(t *testing.T) {
		// The first documented family on the scrape, so the control
		// still runs when the check above fails for another family.
		victim := ""
		for _, name := range sortedKeys(documented) {
			if families[name] > 0 {
				victim = name
				break
			}
		}
		if victim == "" {
			t.Fatal("no documented family on the scrape to remove")
		}
		cut := dropFamily(scrape, victim)
		if got, want := missingFamilies(documented, parseFamilies(cut), absentAtRest), with(baseFamilies, victim); !slices.Equal(got, want) {
			t.Errorf("scrape without %s: got missing %v, want %v", victim, got, want)
		}
		// A series the docs spell out, removed from the scrape.
		const family, series = "shoal_locks_acquires_total", `result="busy"`
		if !slices.Contains(values[family], series) || !hasSeries(scrape, family, series) {
			t.Fatalf("the control needs %s{%s} spelled out in the docs (they have %v) and on the scrape", family, series, values[family])
		}
		var kept []string
		for _, line := range strings.SplitAfter(scrape, "\n") {
			if !strings.HasPrefix(line, family+"{"+series) {
				kept = append(kept, line)
			}
		}
		if got, want := missingSeries(values, strings.Join(kept, ""), absentAtRest), with(baseSeries, family+"{"+series+"}"); !slices.Equal(got, want) {
			t.Errorf("scrape without %s{%s}: got missing %v, want %v", family, series, got, want)
		}
		more := map[string][]string{"shoal_kv_not_a_metric_total": {"test"}, "shoal_nowhere_*": {"test"}}
		for k, v := range documented {
			more[k] = v
		}
		if got, want := missingFamilies(more, families, absentAtRest), with(baseFamilies, "shoal_kv_not_a_metric_total", "shoal_nowhere_*"); !slices.Equal(got, want) {
			t.Errorf("docs naming unknown metrics: got missing %v, want %v", got, want)
		}
	})
}

func TestDocNames_Parse(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // name, and {the label values spelled out}
	}{
		{"plain", "see `shoal_kv_keys` here", []string{"shoal_kv_keys"}},
		{"labels", "`shoal_http_requests_total{method,route,code}`", []string{"shoal_http_requests_total"}},
		{"escaped alternatives", "| `shoal_locks_acquires_total{result=\"granted\\|busy\"}` | x |",
			[]string{`shoal_locks_acquires_total{result="granted",result="busy"}`}},
		{"quoted alternatives", "`shoal_log_reads_total{source=\"disk\"|\"cache\"}`",
			[]string{`shoal_log_reads_total{source="disk",source="cache"}`}},
		{"one value", "(`shoal_kv_messages_dropped_total{reason=\"inbox_full\"}`)",
			[]string{`shoal_kv_messages_dropped_total{reason="inbox_full"}`}},
		{"two spans", "`shoal_a_total`, `shoal_b{x}`", []string{"shoal_a_total", "shoal_b"}},
		{"wildcard", "the hub's `shoal_objectsync_ws_*` (connections)", []string{"shoal_objectsync_ws_*"}},
		{"inside an expression", "`rate(shoal_http_requests_total[5m])`", []string{"shoal_http_requests_total"}},
		{"not backticked", "shoal_kv_keys and shoal_x", nil},
		{"not a name", "`shoal agent` and `shoal`", nil},
		{"fence", "```\nshoal_kv_keys 1\n```", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, n := range docNames(tt.text) {
				s := n.name
				if len(n.values) > 0 {
					s += "{" + strings.Join(n.values, ",") + "}"
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseFamilies(t *testing.T) {
	scrape := `# HELP shoal_a_seconds A.
# TYPE shoal_a_seconds histogram
shoal_a_seconds_bucket{le="1"} 0
shoal_a_seconds_bucket{le="+Inf"} 0
shoal_a_seconds_sum 0
shoal_a_seconds_count 0
# HELP shoal_b_total B.
# TYPE shoal_b_total counter
shoal_b_total{x="y"} 0
shoal_b_total{x="z"} 0
# HELP shoal_c C.
# TYPE shoal_c gauge
shoal_c 1
`
	want := map[string]int{"shoal_a_seconds": 4, "shoal_b_total": 2, "shoal_c": 1}
	if got := parseFamilies(scrape); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	want = map[string]int{"shoal_a_seconds": 4, "shoal_c": 1}
	if got := parseFamilies(dropFamily(scrape, "shoal_b_total")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after dropping shoal_b_total: got %v, want %v", got, want)
	}
}

// docName is a metric name a doc mentions; a name ending in "_*" stands
// for every family with that prefix.
type docName struct {
	name string
	line int
	// values are the label values the doc spells out after the name, as
	// in {result="granted\|busy"} or {source="cache"|"disk"}, each as
	// label="value".
	values []string
}

var (
	codeSpan   = regexp.MustCompile("`([^`\n]+)`")
	metricName = regexp.MustCompile(`shoal_[a-z0-9_]+\*?(\{[^}]*\})?`)
	labelValue = regexp.MustCompile(`([a-z_]+)=((?:"[^"]*"(?:\\?\|)?)+)`)
)

// docNames returns the shoal_ names inside the inline code spans of a
// markdown text, in order.
func docNames(text string) []docName {
	var out []docName
	for _, loc := range codeSpan.FindAllStringSubmatchIndex(text, -1) {
		span := text[loc[2]:loc[3]]
		line := 1 + strings.Count(text[:loc[0]], "\n")
		for _, m := range metricName.FindAllString(span, -1) {
			n, labels, _ := strings.Cut(m, "{")
			if strings.HasSuffix(n, "*") && !strings.HasSuffix(n, "_*") {
				n = strings.TrimSuffix(n, "*")
			}
			d := docName{name: n, line: line}
			for _, lv := range labelValue.FindAllStringSubmatch(labels, -1) {
				for _, v := range strings.Split(strings.ReplaceAll(lv[2], `\|`, "|"), "|") {
					d.values = append(d.values, fmt.Sprintf("%s=%s", lv[1], `"`+strings.Trim(v, `"`)+`"`))
				}
			}
			out = append(out, d)
		}
	}
	return out
}

// documentedMetrics returns the metric names README.md and docs/*.md
// mention in backticks, each with where it is mentioned (file:line),
// without notMetrics; and the label values they spell out, by name.
func documentedMetrics(t *testing.T, root string) (names map[string][]string, values map[string][]string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	out := map[string][]string{}
	values = map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read docs: %v", err)
		}
		rel, _ := filepath.Rel(root, f)
		for _, n := range docNames(string(b)) {
			if _, skip := notMetrics[n.name]; skip {
				continue
			}
			out[n.name] = append(out[n.name], fmt.Sprintf("%s:%d", rel, n.line))
			for _, v := range n.values {
				if !slices.Contains(values[n.name], v) {
					values[n.name] = append(values[n.name], v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no metric names found in %s: the doc parser is broken", strings.Join(files, ", "))
	}
	return out, values
}

// missingSeries returns, sorted, the documented label values (as
// family{label="value"}) that no sample of their family in the scrape
// carries, except for the families in exempt.
func missingSeries(values map[string][]string, scrape string, exempt map[string]string) []string {
	var out []string
	for family, vs := range values {
		if _, ok := exempt[family]; ok {
			continue
		}
		for _, v := range vs {
			if !hasSeries(scrape, family, v) {
				out = append(out, family+"{"+v+"}")
			}
		}
	}
	sort.Strings(out)
	return out
}

// hasSeries reports whether a sample of family carries labelValue
// (label="value").
func hasSeries(scrape, family, labelValue string) bool {
	for _, line := range strings.Split(scrape, "\n") {
		name, labels, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if (name == family || strings.TrimSuffix(name, "_bucket") == family) &&
			(strings.Contains(labels, "{"+labelValue) || strings.Contains(labels, ","+labelValue) || strings.HasPrefix(labels, labelValue)) {
			return true
		}
	}
	return false
}

// missingFamilies returns, sorted, the documented names that have no
// family in families, except those in exempt. A name ending in "_*" needs
// one family with its prefix.
func missingFamilies(documented map[string][]string, families map[string]int, exempt map[string]string) []string {
	var out []string
	for name := range documented {
		if _, ok := exempt[name]; ok {
			continue
		}
		if prefix, ok := strings.CutSuffix(name, "*"); ok {
			found := false
			for f, n := range families {
				if n > 0 && strings.HasPrefix(f, prefix) {
					found = true
					break
				}
			}
			if !found {
				out = append(out, name)
			}
			continue
		}
		if families[name] == 0 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// undocumentedFamilies returns, sorted, the shoal_ families that no
// documented name or prefix covers.
func undocumentedFamilies(documented map[string][]string, families map[string]int) []string {
	var out []string
	for f := range families {
		if !strings.HasPrefix(f, "shoal_") {
			continue
		}
		if _, ok := documented[f]; ok {
			continue
		}
		covered := false
		for name := range documented {
			if prefix, ok := strings.CutSuffix(name, "*"); ok && strings.HasPrefix(f, prefix) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

// scrapeMetrics returns the text exposition at url.
func scrapeMetrics(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// parseFamilies returns the families of a Prometheus text exposition,
// each with its number of samples. A family's samples follow its # TYPE
// line (histogram samples carry _bucket, _sum and _count suffixes).
func parseFamilies(scrape string) map[string]int {
	out := map[string]int{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(scrape))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := familyLine(line); ok {
			if strings.HasPrefix(line, "# TYPE ") {
				cur = f
				out[cur] += 0
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		if cur != "" && strings.HasPrefix(name, cur) {
			out[cur]++
		} else {
			out[name]++ // a sample without a # TYPE line
		}
	}
	return out
}

// familyLine returns the family a # HELP or # TYPE line is about.
func familyLine(line string) (string, bool) {
	for _, p := range []string{"# HELP ", "# TYPE "} {
		if rest, ok := strings.CutPrefix(line, p); ok {
			name, _, _ := strings.Cut(rest, " ")
			return name, true
		}
	}
	return "", false
}

// dropFamily returns the scrape without family's lines: a node that
// forgot to register it.
func dropFamily(scrape, family string) string {
	var b strings.Builder
	cur := ""
	for _, line := range strings.SplitAfter(scrape, "\n") {
		if f, ok := familyLine(strings.TrimSuffix(line, "\n")); ok {
			cur = f
		}
		if cur != family {
			b.WriteString(line)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
