package initd

import (
	"strings"
	"testing"
	"time"
)

var timeZero = time.Now()

func TestLoggerBuffersUntilAttached(t *testing.T) {
	l := NewLogger(time.Now())
	l.Noticef("early %d", 1)
	l.Infof("hidden") // not Debug
	var kmsg strings.Builder
	l.Attach(&kmsg, nil)
	l.Debug = true
	l.Infof("step")
	got := kmsg.String()
	if !strings.HasPrefix(got, "<5>ferry-init: early 1\n<6>ferry-init: +") || strings.Contains(got, "hidden") || !strings.HasSuffix(got, "ms step\n") {
		t.Fatalf("kmsg:\n%s", got)
	}
}
