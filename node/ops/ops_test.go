package ops_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/node/ops"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestReadiness(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "parley_test_total", Help: "x"})
	reg.MustRegister(c)
	c.Inc()
	ready := ops.NewReady("store", "listeners")
	h := ops.Handler(reg, ready, nil)
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "listeners, store") {
		t.Fatalf("/readyz = %d %q, want 503 naming both", code, body)
	}
	ready.Set("store", true)
	ready.Set("listeners", true)
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d, want 200", code)
	}
	ready.Set("shutdown", false)
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "shutdown") {
		t.Fatalf("/readyz while shutting down = %d %q", code, body)
	}
	if code, _ := get(t, h, "/livez"); code != 200 {
		t.Fatalf("/livez = %d", code)
	}
	if code, body := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "parley_test_total 1") {
		t.Fatalf("/metrics = %d %q", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != 404 {
		t.Fatalf("/nope = %d", code)
	}
}
