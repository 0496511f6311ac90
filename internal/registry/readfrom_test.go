package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWrappersKeepReaderFrom guards the blob download fast path: every
// writer the middleware wraps around the connection passes ReadFrom on.
func TestWrappersKeepReaderFrom(t *testing.T) {
	inner := &readFromSpy{ResponseRecorder: httptest.NewRecorder()}
	guard := &guardWriter{ResponseWriter: inner, rc: http.NewResponseController(inner), p: pace{lim: Limits{}.withDefaults()}, ok: true}
	rec := &statusRecorder{ResponseWriter: guard}
	rw := &rewriter{ResponseWriter: rec, ns: NamespaceFor("x"), route: routeBlob, method: http.MethodGet}
	var w http.ResponseWriter = rw
	n, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("blob bytes"))
	if err != nil || n != 10 || !inner.used || inner.Body.String() != "blob bytes" {
		t.Fatalf("ReadFrom: n=%d err=%v spy used=%v body=%q", n, err, inner.used, inner.Body)
	}
}

type readFromSpy struct {
	*httptest.ResponseRecorder
	used bool
}

func (r *readFromSpy) ReadFrom(src io.Reader) (int64, error) {
	r.used = true
	return io.Copy(r.ResponseRecorder, src)
}
